//! Origin groups: try members in order on connect errors, timeouts and the configured
//! failover statuses. As in CloudFront, only GET, HEAD and OPTIONS fail over; other
//! methods go to the first member only (their bodies cannot be replayed).

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Method, Response};

use crate::body::BoxBody;
use crate::config::Origin;
use crate::origin::client::OutgoingRequest;
use crate::origin::{OriginClient, OriginError};

/// The origins a request may go to, in order.
pub struct FetchPlan {
    pub members: Vec<Arc<OriginClient>>,
    pub failover_statuses: Vec<u16>,
}

/// The origin's answer and which origin gave it.
pub struct Fetched {
    pub origin: Arc<OriginClient>,
    pub result: Result<Response<BoxBody>, OriginError>,
}

/// Fetches through the plan. `make` builds the request for one origin (Host, origin path
/// and custom headers differ per origin); it is called once per attempted member.
/// `observe` sees each attempt's result and the time it took to the response headers.
pub async fn fetch(
    plan: &FetchPlan,
    method: &Method,
    mut make: impl FnMut(&Origin) -> OutgoingRequest,
    mut observe: impl FnMut(&Origin, &Result<Response<BoxBody>, OriginError>, Duration),
) -> Option<Fetched> {
    let fails_over =
        *method == Method::GET || *method == Method::HEAD || *method == Method::OPTIONS;
    let members = if fails_over {
        &plan.members[..]
    } else {
        &plan.members[..plan.members.len().min(1)]
    };
    let mut last = None;
    for (i, client) in members.iter().enumerate() {
        let is_last = i + 1 == members.len();
        let sent = Instant::now();
        let result = client.send(make(&client.origin)).await;
        observe(&client.origin, &result, sent.elapsed());
        let next = match &result {
            Err(e) => e.fails_over(),
            Ok(resp) => plan.failover_statuses.contains(&resp.status().as_u16()),
        };
        if next && !is_last {
            match &result {
                Err(e) => {
                    tracing::warn!(error = %e, "origin failed; trying the next member of the group")
                }
                Ok(resp) => {
                    tracing::warn!(origin = %client.origin.base_url(), status = resp.status().as_u16(), "origin answered a failover status; trying the next member of the group")
                }
            }
            continue;
        }
        last = Some(Fetched {
            origin: client.clone(),
            result,
        });
        break;
    }
    last
}
