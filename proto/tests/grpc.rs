//! The generated API encodes, decodes and serves over a real socket.

use prost::Message;
use strom_proto::admin::admin_client::AdminClient;
use strom_proto::admin::admin_server::{Admin, AdminServer};
use strom_proto::admin::{
    AlterBrokerConfigsRequest, AlterBrokerConfigsResponse, AlterPartitionReassignmentsRequest,
    AlterPartitionReassignmentsResponse, AlterTopicConfigsRequest, AlterTopicConfigsResponse,
    ControlledShutdownRequest, ControlledShutdownResponse, CreatePartitionsRequest, CreatePartitionsResponse,
    CreateTopicRequest, CreateTopicResponse, DeleteTopicRequest, DeleteTopicResponse, DescribeClusterRequest,
    DescribeClusterResponse, DescribeTopicsRequest, DescribeTopicsResponse, ElectLeadersRequest, ElectLeadersResponse,
    IsSafeToRestartRequest, IsSafeToRestartResponse, PartitionRef, ReplicaAssignment,
};
use strom_proto::admin::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, DescribeClientQuotasRequest, DescribeClientQuotasResponse,
};
use strom_proto::admin::{ChangeControllerVotersRequest, ChangeControllerVotersResponse};
use strom_proto::admin::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse, DeleteScramCredentialRequest,
    DeleteScramCredentialResponse, DescribeUserRequest, DescribeUserResponse, UpsertScramCredentialRequest,
    UpsertScramCredentialResponse,
};
use strom_proto::replication::{EpochEndOffset, FetchRecordsResponse};
use tonic::{Request, Response, Status};

#[test]
fn fetch_response_round_trips_with_diverging_epoch() {
    let response = FetchRecordsResponse {
        error_code: 0,
        records: vec![1, 2, 3].into(),
        high_watermark: 42,
        log_start_offset: 7,
        diverging_epoch: Some(EpochEndOffset { epoch: 3, end_offset: 40 }),
        leader_epoch: 4,
        error_message: String::new(),
        log_end_offset: 45,
    };
    let bytes = response.encode_to_vec();
    assert_eq!(FetchRecordsResponse::decode(bytes.as_slice()).unwrap(), response);
    let without = FetchRecordsResponse { diverging_epoch: None, ..response };
    assert_eq!(FetchRecordsResponse::decode(without.encode_to_vec().as_slice()).unwrap().diverging_epoch, None);
}

/// Answers DescribeCluster with a fixed cluster and refuses the rest.
struct FixedAdmin;

#[tonic::async_trait]
impl Admin for FixedAdmin {
    async fn describe_cluster(
        &self,
        _: Request<DescribeClusterRequest>,
    ) -> Result<Response<DescribeClusterResponse>, Status> {
        Ok(Response::new(DescribeClusterResponse {
            cluster_id: "c1".into(),
            controller_id: 2,
            offline_partitions: vec![PartitionRef { topic: "t".into(), partition: 0 }],
            ..Default::default()
        }))
    }
    async fn create_topic(&self, r: Request<CreateTopicRequest>) -> Result<Response<CreateTopicResponse>, Status> {
        let assignments = r.into_inner().assignments;
        Ok(Response::new(CreateTopicResponse { assignments, ..Default::default() }))
    }
    async fn delete_topic(&self, _: Request<DeleteTopicRequest>) -> Result<Response<DeleteTopicResponse>, Status> {
        Err(Status::unimplemented("delete"))
    }
    async fn elect_leaders(&self, _: Request<ElectLeadersRequest>) -> Result<Response<ElectLeadersResponse>, Status> {
        Err(Status::unimplemented("elect"))
    }
    async fn controlled_shutdown(
        &self,
        _: Request<ControlledShutdownRequest>,
    ) -> Result<Response<ControlledShutdownResponse>, Status> {
        Err(Status::unimplemented("shutdown"))
    }
    async fn is_safe_to_restart(
        &self,
        _: Request<IsSafeToRestartRequest>,
    ) -> Result<Response<IsSafeToRestartResponse>, Status> {
        Err(Status::unimplemented("safe"))
    }
    async fn describe_topics(
        &self,
        _: Request<DescribeTopicsRequest>,
    ) -> Result<Response<DescribeTopicsResponse>, Status> {
        Err(Status::unimplemented("describe topics"))
    }
    async fn create_partitions(
        &self,
        _: Request<CreatePartitionsRequest>,
    ) -> Result<Response<CreatePartitionsResponse>, Status> {
        Err(Status::unimplemented("create partitions"))
    }
    async fn alter_topic_configs(
        &self,
        _: Request<AlterTopicConfigsRequest>,
    ) -> Result<Response<AlterTopicConfigsResponse>, Status> {
        Err(Status::unimplemented("alter configs"))
    }
    async fn alter_broker_configs(
        &self,
        _: Request<AlterBrokerConfigsRequest>,
    ) -> Result<Response<AlterBrokerConfigsResponse>, Status> {
        Err(Status::unimplemented("broker configs"))
    }
    async fn upsert_scram_credential(
        &self,
        _: Request<UpsertScramCredentialRequest>,
    ) -> Result<Response<UpsertScramCredentialResponse>, Status> {
        Err(Status::unimplemented("users"))
    }
    async fn delete_scram_credential(
        &self,
        _: Request<DeleteScramCredentialRequest>,
    ) -> Result<Response<DeleteScramCredentialResponse>, Status> {
        Err(Status::unimplemented("users"))
    }
    async fn describe_user(&self, _: Request<DescribeUserRequest>) -> Result<Response<DescribeUserResponse>, Status> {
        Err(Status::unimplemented("users"))
    }
    async fn create_acls(&self, _: Request<CreateAclsRequest>) -> Result<Response<CreateAclsResponse>, Status> {
        Err(Status::unimplemented("acls"))
    }
    async fn delete_acls(&self, _: Request<DeleteAclsRequest>) -> Result<Response<DeleteAclsResponse>, Status> {
        Err(Status::unimplemented("acls"))
    }
    async fn describe_client_quotas(
        &self,
        _: Request<DescribeClientQuotasRequest>,
    ) -> Result<Response<DescribeClientQuotasResponse>, Status> {
        Err(Status::unimplemented("quotas"))
    }
    async fn alter_client_quotas(
        &self,
        _: Request<AlterClientQuotasRequest>,
    ) -> Result<Response<AlterClientQuotasResponse>, Status> {
        Err(Status::unimplemented("quotas"))
    }
    async fn change_controller_voters(
        &self,
        _: Request<ChangeControllerVotersRequest>,
    ) -> Result<Response<ChangeControllerVotersResponse>, Status> {
        Err(Status::unimplemented("voters"))
    }
    async fn alter_partition_reassignments(
        &self,
        _: Request<AlterPartitionReassignmentsRequest>,
    ) -> Result<Response<AlterPartitionReassignmentsResponse>, Status> {
        Err(Status::unimplemented("reassign"))
    }
}

#[tokio::test]
async fn admin_service_answers_over_loopback() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        tonic::transport::Server::builder().add_service(AdminServer::new(FixedAdmin)).serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            async {
                let _ = stop_rx.await;
            },
        ),
    );

    let mut client = AdminClient::connect(format!("http://{addr}")).await.unwrap();
    let cluster = client.describe_cluster(DescribeClusterRequest {}).await.unwrap().into_inner();
    assert_eq!(cluster.cluster_id, "c1");
    assert_eq!(cluster.controller_id, 2);
    assert_eq!(cluster.offline_partitions[0].topic, "t");

    let assignments = vec![ReplicaAssignment { replicas: vec![1, 2, 3] }];
    let created = client
        .create_topic(CreateTopicRequest { name: "t".into(), assignments: assignments.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.assignments, assignments);

    let refused = client.delete_topic(DeleteTopicRequest { name: "t".into() }).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unimplemented);

    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
}
