//! openraft's RPCs over the `Raft` gRPC service of `strom-proto`.
//!
//! Each message is openraft's own request or `Result<response, RaftError>`
//! serialized as JSON in a `RaftMessage` envelope (see the strom-proto crate
//! docs for why). Client side: one lazily connected tonic channel per peer;
//! a transport failure is reported as `Unreachable`, so openraft backs off.
//! Server side: [`RaftService`] decodes, hands the request to the local Raft
//! node and encodes its answer; a payload that does not decode is refused
//! with `INVALID_ARGUMENT`, never passed on.
//!
//! With internal TLS, a client presents this broker's certificate and
//! requires the server's to name the node it calls; the server takes the
//! caller's identity from its certificate (see [`crate::tls`]): a Raft
//! message is accepted only from the broker its vote names, and only if that
//! broker may lead or campaign by [`super::admission`]'s rules (a voter, in
//! short, and never a term beyond its cap); `Propose` only from a member
//! (voter or learner), or from a broker registering itself.

use openraft::BasicNode;
use openraft::error::{
    ChangeMembershipError, ClientWriteError, InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError,
    Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use strom_proto::raft::RaftMessage;
use strom_proto::raft::raft_client::RaftClient;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::admission::Admission;
use super::describe::{DescribeQuorumError, QuorumDescription, describe};
use super::image::{Command, CommandResult};
use super::liveness::Sessions;
use super::rejoin::{Gate, PeerStatus, RejoinReply, RejoinRequest, Stage, handle_rejoin};
use super::state_machine::AppliedState;
use super::{NodeId, Raft, TypeConfig};
use crate::tls::{Caller, Identity, InternalTls};

/// Which RPC of the `Raft` service to call.
#[derive(Debug, Clone, Copy)]
enum Rpc {
    AppendEntries,
    Vote,
    InstallSnapshot,
    Propose,
    Status,
    Rejoin,
    DescribeQuorum,
}

/// A command forwarded to another node failed there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ProposeError {
    /// The receiving node is not the active controller either.
    #[error("node is not the active controller; the leader is {leader:?}")]
    ForwardToLeader {
        /// The leader it knows of, if any.
        leader: Option<NodeId>,
    },
    /// Raft could not commit the command (shutting down, quorum lost, ...).
    #[error("the controller quorum could not commit the command: {0}")]
    Raft(String),
}

/// A command committed by the quorum: its log index and what applying it produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Committed {
    /// The Raft log index of the entry (0 when it was answered without one,
    /// as a live broker's heartbeat is).
    pub index: u64,
    /// The state machine's answer.
    pub result: CommandResult,
}

/// The answer to a forwarded command.
pub type ProposeReply = Result<Committed, ProposeError>;

/// A connection to one peer's `Raft` service.
#[derive(Debug, Clone)]
pub struct PeerClient {
    target: NodeId,
    node: BasicNode,
    tls: Option<Arc<InternalTls>>,
    client: Option<RaftClient<Channel>>,
}

impl PeerClient {
    /// A client for `node` (its internal address), connecting on first use,
    /// over mutual TLS when `tls` is given.
    pub fn new(target: NodeId, node: BasicNode, tls: Option<Arc<InternalTls>>) -> PeerClient {
        PeerClient { target, node, tls, client: None }
    }

    fn client(&mut self) -> Result<RaftClient<Channel>, NetworkCallError> {
        if let Some(c) = &self.client {
            return Ok(c.clone());
        }
        let expected = i32::try_from(self.target).ok();
        let channel = crate::tls::channel(self.tls.as_ref(), &self.node.addr, expected, None)
            .map_err(|e| NetworkCallError::Unreachable(e.to_string()))?;
        let client = RaftClient::new(channel);
        self.client = Some(client.clone());
        Ok(client)
    }

    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &mut self,
        rpc: Rpc,
        request: &Req,
        timeout: Option<std::time::Duration>,
    ) -> Result<Resp, NetworkCallError> {
        let payload = serde_json::to_vec(request).map_err(|e| NetworkCallError::Network(e.to_string()))?;
        let mut req = Request::new(RaftMessage { payload });
        if let Some(t) = timeout {
            req.set_timeout(t);
        }
        let mut client = self.client()?;
        let reply = match rpc {
            Rpc::AppendEntries => client.append_entries(req).await,
            Rpc::Vote => client.vote(req).await,
            Rpc::InstallSnapshot => client.install_snapshot(req).await,
            Rpc::Propose => client.propose(req).await,
            Rpc::Status => client.status(req).await,
            Rpc::Rejoin => client.rejoin(req).await,
            Rpc::DescribeQuorum => client.describe_quorum(req).await,
        };
        let reply = reply.map_err(|status| match status.code() {
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => {
                // Drop the channel so the next call reconnects from scratch.
                self.client = None;
                NetworkCallError::Unreachable(status.to_string())
            }
            _ => NetworkCallError::Network(status.to_string()),
        })?;
        serde_json::from_slice(&reply.into_inner().payload).map_err(|e| NetworkCallError::Network(e.to_string()))
    }

    /// Forwards a command to this peer (the active controller).
    pub async fn propose(&mut self, command: &Command) -> Result<ProposeReply, NetworkCallError> {
        self.call(Rpc::Propose, command, Some(std::time::Duration::from_secs(10))).await
    }

    async fn raft_call<Req: Serialize, Resp: DeserializeOwned, E: std::error::Error + DeserializeOwned>(
        &mut self,
        rpc: Rpc,
        request: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>> {
        let reply: Result<Resp, RaftError<NodeId, E>> =
            self.call(rpc, request, Some(option.hard_ttl())).await.map_err(|e| match e {
                NetworkCallError::Unreachable(_) => RPCError::Unreachable(Unreachable::new(&e)),
                NetworkCallError::Network(_) => RPCError::Network(NetworkError::new(&e)),
            })?;
        reply.map_err(|e| RPCError::RemoteError(RemoteError::new_with_node(self.target, self.node.clone(), e)))
    }
}

/// The calls a voter makes while it bootstraps or rejoins (see [`super::rejoin`]).
impl PeerClient {
    /// Asks this peer for its log length, leader and stage.
    pub async fn status(&mut self) -> Result<PeerStatus, NetworkCallError> {
        self.call(Rpc::Status, &(), Some(std::time::Duration::from_secs(1))).await
    }

    /// Asks this peer (the active controller) for the next step of a rejoin;
    /// making a node a voter again waits for it to catch up.
    pub async fn rejoin(&mut self, request: &RejoinRequest) -> Result<RejoinReply, NetworkCallError> {
        self.call(Rpc::Rejoin, request, Some(std::time::Duration::from_secs(60))).await
    }
}

impl PeerClient {
    /// Asks this peer (the active controller) to describe the quorum.
    pub async fn describe_quorum(
        &mut self,
    ) -> Result<Result<QuorumDescription, DescribeQuorumError>, NetworkCallError> {
        self.call(Rpc::DescribeQuorum, &(), Some(std::time::Duration::from_secs(2))).await
    }
}

/// A call to a peer failed before it got an answer.
#[derive(Debug, thiserror::Error)]
pub enum NetworkCallError {
    /// The peer could not be reached.
    #[error("peer unreachable: {0}")]
    Unreachable(String),
    /// The call reached the peer but failed (bad payload, refused, ...).
    #[error("raft rpc failed: {0}")]
    Network(String),
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.raft_call(Rpc::AppendEntries, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>>
    {
        self.raft_call(Rpc::InstallSnapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.raft_call(Rpc::Vote, &rpc, &option).await
    }
}

/// Hands out a [`PeerClient`] per target.
#[derive(Debug, Clone, Default)]
pub struct NetworkFactory {
    tls: Option<Arc<InternalTls>>,
}

impl NetworkFactory {
    /// Clients over mutual TLS when `tls` is given, else plain.
    pub fn new(tls: Option<Arc<InternalTls>>) -> NetworkFactory {
        NetworkFactory { tls }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        PeerClient::new(target, node.clone(), self.tls.clone())
    }
}

/// The server side of the `Raft` service: hands requests to the local node.
#[derive(Clone)]
pub struct RaftService {
    raft: Raft,
    active: ActiveController,
    gate: Gate,
    /// This node's internal TLS, for the calls a rejoin makes to the rejoining node.
    tls: Option<Arc<InternalTls>>,
    /// Who may lead or campaign towards this node.
    admission: Admission,
}

impl RaftService {
    /// Serves `raft`; forwarded commands are proposed through `active`.
    pub fn new(raft: Raft, active: ActiveController) -> RaftService {
        let admission = Admission::new(raft.clone(), active.state.clone(), None, BTreeMap::new());
        RaftService { raft, active, gate: Gate::new(Stage::Open), tls: None, admission }
    }

    /// Calls other nodes (a rejoining node, the voters asked about a
    /// sender) over `tls`; `configured` are the configured (`--voters`)
    /// voters (see [`super::admission`]).
    pub fn with_peers(mut self, tls: Option<Arc<InternalTls>>, configured: BTreeMap<NodeId, BasicNode>) -> RaftService {
        self.admission = Admission::new(self.raft.clone(), self.active.state.clone(), tls.clone(), configured);
        self.tls = tls;
        self
    }

    /// Takes part in Raft only as far as `gate` allows (a voter that
    /// bootstraps or rejoins after losing its log, see [`super::rejoin`]).
    pub fn with_gate(mut self, gate: Gate) -> RaftService {
        self.gate = gate;
        self
    }

    /// Refuses a Raft RPC the gate does not let through, as `UNAVAILABLE`
    /// (the sender sees this node as unreachable and backs off).
    fn check_gate(&self, vote_request: bool) -> Result<(), Status> {
        let open = if vote_request { self.gate.takes_votes() } else { self.gate.takes_replication() };
        if open {
            return Ok(());
        }
        Err(Status::unavailable(format!(
            "this controller node is {:?}: it lost its log (or is deciding how to start) and takes no part in \
             Raft until it has rejoined the quorum",
            self.gate.stage()
        )))
    }
}

/// The authenticated broker behind `caller`: `Ok(None)` on an insecure
/// listener (nobody is authenticated there), refused for the operator or a
/// certificate naming nobody.
fn calling_broker(caller: &Caller) -> Result<Option<NodeId>, Status> {
    match caller {
        Caller::Insecure => Ok(None),
        Caller::Authenticated(Identity::Broker(id)) => NodeId::try_from(*id)
            .map(Some)
            .map_err(|_| Status::permission_denied(format!("broker id {id} is not a node id"))),
        Caller::Authenticated(other) => {
            Err(Status::permission_denied(format!("{other} may not call the Raft service; only brokers may")))
        }
        Caller::Unidentified(reason) => Err(Status::permission_denied(format!("unidentified caller: {reason}"))),
    }
}

fn decode<T: DeserializeOwned>(request: Request<RaftMessage>) -> Result<T, Status> {
    serde_json::from_slice(&request.into_inner().payload)
        .map_err(|e| Status::invalid_argument(format!("undecodable raft payload: {e}")))
}

fn encode<T: Serialize>(reply: &T) -> Result<Response<RaftMessage>, Status> {
    serde_json::to_vec(reply)
        .map(|payload| Response::new(RaftMessage { payload }))
        .map_err(|e| Status::internal(format!("cannot encode raft reply: {e}")))
}

impl RaftService {
    /// Refuses a Raft leader or candidate RPC (AppendEntries,
    /// InstallSnapshot, Vote) from a node that is not a voter of this node's
    /// quorum (a broker, a stray process, another cluster's node): it is
    /// never handed to Raft. See [`super::admission`].
    ///
    /// With internal TLS the sender named in the vote must also be the
    /// broker whose certificate `caller` presented.
    async fn check_sender(&self, caller: &Caller, vote: &openraft::Vote<NodeId>) -> Result<(), Status> {
        let named = vote.leader_id().voted_for();
        if let Some(authenticated) = calling_broker(caller)?
            && named != Some(authenticated)
        {
            tracing::warn!(caller = authenticated, ?named, "refused a Raft RPC naming another sender than its caller");
            return Err(Status::permission_denied(format!(
                "the message names sender {named:?}, but the caller's certificate is broker {authenticated}'s"
            )));
        }
        match named {
            Some(sender) => self.admission.admit(sender, vote).await,
            None => Ok(()),
        }
    }

    /// Admits a forwarded command: from a member (voter or learner) of the
    /// quorum, or from a broker registering itself (it becomes a learner
    /// then). Anyone on an insecure listener.
    fn check_proposer(&self, caller: &Caller, command: &Command) -> Result<(), Status> {
        let Some(proposer) = calling_broker(caller)? else {
            return Ok(());
        };
        if let Command::RegisterBroker { broker_id, .. } = command
            && NodeId::try_from(*broker_id).ok() == Some(proposer)
        {
            return Ok(());
        }
        // Commands a broker sends about itself: only that broker may send them.
        let about = match command {
            Command::BrokerHeartbeat { broker_id, .. }
            | Command::UpdateBrokerListeners { broker_id, .. }
            | Command::AllocateProducerIdBlock { broker_id } => Some(*broker_id),
            Command::AlterIsr { leader_id, .. } => Some(*leader_id),
            Command::RegisterBroker { broker_id, .. } => Some(*broker_id),
            // Only the active controller fences, by its own session timer,
            // and records the voters rejoining through it.
            Command::FenceBroker { .. } | Command::VoterRejoining { .. } | Command::VoterRejoined { .. } => Some(-1),
            _ => None,
        };
        if let Some(subject) = about
            && NodeId::try_from(subject).ok() != Some(proposer)
        {
            tracing::warn!(proposer, subject, "refused a proposal about another broker");
            return Err(Status::permission_denied(format!(
                "broker {proposer} may not propose this command for broker {subject}; a broker speaks only for itself"
            )));
        }
        let metrics = self.raft.metrics().borrow().clone();
        if metrics.membership_config.membership().get_node(&proposer).is_some() {
            return Ok(());
        }
        tracing::warn!(proposer, "refused a proposal from a broker outside the controller quorum");
        Err(Status::permission_denied(format!(
            "broker {proposer} is not a member of this controller quorum and may only register itself"
        )))
    }
}

#[tonic::async_trait]
impl strom_proto::raft::raft_server::Raft for RaftService {
    async fn append_entries(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let caller = crate::tls::caller(&request);
        let req: AppendEntriesRequest<TypeConfig> = decode(request)?;
        self.check_gate(false)?;
        self.check_sender(&caller, &req.vote).await?;
        encode(&self.raft.append_entries(req).await)
    }

    async fn vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let caller = crate::tls::caller(&request);
        let req: VoteRequest<NodeId> = decode(request)?;
        self.check_gate(true)?;
        self.check_sender(&caller, &req.vote).await?;
        encode(&self.raft.vote(req).await)
    }

    async fn install_snapshot(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let caller = crate::tls::caller(&request);
        let req: InstallSnapshotRequest<TypeConfig> = decode(request)?;
        self.check_gate(false)?;
        self.check_sender(&caller, &req.vote).await?;
        encode(&self.raft.install_snapshot(req).await)
    }

    async fn propose(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let caller = crate::tls::caller(&request);
        let command: Command = decode(request)?;
        self.check_proposer(&caller, &command)?;
        encode(&self.active.propose(&self.raft, command).await)
    }

    async fn status(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        // Only brokers (anyone on an insecure listener) learn the quorum's state.
        calling_broker(&crate::tls::caller(&request))?;
        let status = {
            let m = self.raft.metrics();
            let m = m.borrow();
            let membership = m.membership_config.membership();
            let voters = membership
                .voter_ids()
                .filter_map(|id| membership.get_node(&id).map(|n| (id, n.addr.clone())))
                .collect::<BTreeMap<_, _>>();
            PeerStatus {
                last_log_index: m.last_log_index,
                leader: m.current_leader,
                stage: self.gate.stage(),
                voters: (!voters.is_empty()).then_some(voters),
                membership: *m.membership_config.log_id(),
            }
        };
        encode(&status)
    }

    async fn rejoin(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let caller = crate::tls::caller(&request);
        let request: RejoinRequest = decode(request)?;
        if let Some(authenticated) = calling_broker(&caller)?
            && authenticated != request.node_id
        {
            tracing::warn!(caller = authenticated, node = request.node_id, "refused a Rejoin for another node");
            return Err(Status::permission_denied(format!(
                "the caller's certificate is broker {authenticated}'s; it may rejoin only itself, not node {}",
                request.node_id
            )));
        }
        encode(&handle_rejoin(&self.raft, request, self.tls.clone(), &self.active).await)
    }

    async fn describe_quorum(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        // Only brokers (anyone on an insecure listener) learn the quorum's state.
        calling_broker(&crate::tls::caller(&request))?;
        let metrics = self.raft.metrics().borrow().clone();
        encode(&describe(&metrics, crate::clock::now_ms()))
    }
}

/// What only the active controller keeps: broker sessions. Shared by the
/// local proposer and the `Raft` service.
#[derive(Debug, Clone, Default)]
pub struct ActiveController {
    /// Last heartbeat per broker, as seen by this node while it leads.
    pub sessions: Arc<Mutex<Sessions>>,
    /// The image applied on this node (to answer heartbeats of live brokers).
    pub state: Arc<RwLock<AppliedState>>,
    /// Held by a voter change's step and by a rejoin's removal and re-add,
    /// each of which reads or records the rejoining voters and then changes
    /// the membership: a step that leaves a rejoining node out is not undone
    /// by a re-add under way.
    pub voter_changes: Arc<tokio::sync::Mutex<()>>,
}

impl ActiveController {
    /// Commits `command` through this node, which must be the active
    /// controller. A heartbeat of a registered, unfenced broker with its
    /// current epoch only renews its session: it changes nothing in the image,
    /// so it is answered without a log entry (as KRaft does).
    pub async fn propose(&self, raft: &Raft, command: Command) -> ProposeReply {
        if let Command::BrokerHeartbeat { broker_id, broker_epoch } = command {
            // One borrow of the metrics: a second borrow taken while the
            // first is held can deadlock this thread, and Raft's core with
            // it, when a metrics update comes between them (the watch's
            // RwLock queues new readers behind a waiting writer).
            let metrics = raft.metrics();
            let (leader, me) = {
                let m = metrics.borrow();
                (m.current_leader, m.id)
            };
            if leader != Some(me) {
                return Err(ProposeError::ForwardToLeader { leader });
            }
            let live = {
                let state = self.state.read();
                state.image.brokers.get(&broker_id).map(|b| (b.broker_epoch, b.fenced))
            };
            match live {
                Some((epoch, false)) if epoch == broker_epoch => {
                    self.sessions.lock().heartbeat(broker_id, std::time::Instant::now());
                    return Ok(Committed { index: 0, result: Ok(super::image::Outcome::Done) });
                }
                Some((epoch, _)) if epoch == broker_epoch => {
                    // Fenced: the heartbeat unfences it through the log.
                    self.sessions.lock().heartbeat(broker_id, std::time::Instant::now());
                }
                _ => {}
            }
        }
        if let Command::RegisterBroker { broker_id, internal_endpoint, .. } = &command {
            add_learner_if_new(raft, *broker_id, internal_endpoint).await?;
        }
        propose_locally(raft, command).await
    }
}

/// Makes a registering broker that is not a member of the quorum a learner,
/// so it receives the metadata log. Only the active controller does this.
async fn add_learner_if_new(raft: &Raft, broker_id: i32, internal_endpoint: &str) -> Result<(), ProposeError> {
    let Ok(id) = NodeId::try_from(broker_id) else {
        return Ok(()); // a negative id is refused by the state machine
    };
    let (known, member_leader) = {
        let metrics = raft.metrics();
        let m = metrics.borrow();
        (m.membership_config.membership().get_node(&id).is_some(), super::voters::leads_as_member(&m))
    };
    if known {
        return Ok(());
    }
    if !member_leader {
        // A leader that removed its own node is stepping down: ask again.
        return Err(ProposeError::ForwardToLeader { leader: None });
    }
    match raft.add_learner(id, BasicNode::new(internal_endpoint), false).await {
        Ok(_) => {
            tracing::info!(broker_id, internal_endpoint, "added broker as a learner of the metadata log");
            Ok(())
        }
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
            Err(ProposeError::ForwardToLeader { leader: f.leader_id })
        }
        // Another membership change (the bootstrap membership not committed
        // yet, a voter change) is in flight: nothing was appended, so the
        // proposer asks this leader again.
        Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(ChangeMembershipError::InProgress(_)))) => {
            Err(ProposeError::ForwardToLeader { leader: Some(raft.metrics().borrow().id) })
        }
        Err(e) => Err(ProposeError::Raft(format!("cannot add broker {broker_id} as a learner: {e}"))),
    }
}

/// Commits `command` through this node, which must be the active controller.
pub async fn propose_locally(raft: &Raft, command: Command) -> ProposeReply {
    match raft.client_write(command).await {
        Ok(written) => Ok(Committed { index: written.log_id.index, result: written.data.0 }),
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
            Err(ProposeError::ForwardToLeader { leader: f.leader_id })
        }
        Err(e) => Err(ProposeError::Raft(e.to_string())),
    }
}
