//! `ChangeControllerVoters`: the operator moves the controller voters
//! towards a set of broker ids, one Raft membership change per call (see
//! [`crate::controller::voters`] for the plan and its safety).
//!
//! Only the operator's certificate may call it (a broker's is refused; on an
//! insecure internal plane, where nobody is authenticated and any caller can
//! already speak Raft, anyone may). The request is bounded and checked here
//! (at most [`MAX_VOTERS`] ids, none negative or listed twice) before it
//! reaches the controller; the set itself is judged by the active
//! controller, which answers refusals as INVALID_REQUEST naming the brokers.

use std::collections::BTreeSet;

use kafka_protocol::error::ResponseError;
use strom_proto::admin::{ChangeControllerVotersRequest, ChangeControllerVotersResponse};
use tonic::{Request, Status};

use super::{AdminService, controller_status};
use crate::controller::NodeId;
use crate::controller::voters::{MAX_VOTERS, VoterChangeRequest};
use crate::tls::{Caller, Identity};

/// Admits the operator (anyone on an insecure plane); refuses brokers and unidentified callers.
#[allow(clippy::result_large_err)] // tonic's Status
fn operator_or_insecure<T>(request: &Request<T>) -> Result<(), Status> {
    match crate::tls::caller(request) {
        Caller::Authenticated(Identity::Operator) | Caller::Insecure => Ok(()),
        Caller::Authenticated(other) => {
            Err(Status::permission_denied(format!("controller voters are changed by the operator only, not {other}")))
        }
        Caller::Unidentified(reason) => {
            Err(Status::permission_denied(format!("controller voters are changed by the operator only: {reason}")))
        }
    }
}

/// The wanted voters of a request, or why they cannot be.
pub fn wanted_voters(voters: &[i32]) -> Result<BTreeSet<NodeId>, String> {
    if voters.len() > MAX_VOTERS {
        return Err(format!("voters: {} ids given; allowed: at most {MAX_VOTERS}", voters.len()));
    }
    let mut wanted = BTreeSet::new();
    for id in voters {
        let node = NodeId::try_from(*id).map_err(|_| format!("voters: {id} is not a broker id (allowed: 0 and up)"))?;
        if !wanted.insert(node) {
            return Err(format!("voters: broker {id} is listed twice"));
        }
    }
    Ok(wanted)
}

fn refused(message: String) -> ChangeControllerVotersResponse {
    ChangeControllerVotersResponse {
        error_code: ResponseError::InvalidRequest.code().into(),
        error_message: message,
        ..Default::default()
    }
}

fn ids(set: BTreeSet<NodeId>) -> Vec<i32> {
    set.into_iter().filter_map(|id| i32::try_from(id).ok()).collect()
}

impl AdminService {
    pub(super) async fn change_voters(
        &self,
        request: Request<ChangeControllerVotersRequest>,
    ) -> Result<ChangeControllerVotersResponse, Status> {
        operator_or_insecure(&request)?;
        let voters = match wanted_voters(&request.into_inner().voters) {
            Ok(voters) => voters,
            Err(message) => return Ok(refused(message)),
        };
        let answer = self
            .broker
            .controller
            .change_voters(&VoterChangeRequest { voters })
            .await
            .map_err(|e| controller_status(&e))?;
        Ok(match answer {
            Ok(progress) => ChangeControllerVotersResponse {
                error_code: 0,
                error_message: String::new(),
                done: progress.done,
                voters: ids(progress.voters),
                learners: ids(progress.learners),
                detail: progress.detail,
            },
            Err(e) => refused(e.to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_bounded_and_checked_before_the_controller() {
        assert_eq!(wanted_voters(&[2, 0, 1]), Ok(BTreeSet::from([0, 1, 2])));
        let e = wanted_voters(&[0, -1, 2]).unwrap_err();
        assert!(e.contains("-1 is not a broker id"), "{e}");
        let e = wanted_voters(&[0, 1, 1]).unwrap_err();
        assert!(e.contains("broker 1 is listed twice"), "{e}");
        let e = wanted_voters(&[0; 100]).unwrap_err();
        assert!(e.contains("100 ids given; allowed: at most 7"), "{e}");
    }
}
