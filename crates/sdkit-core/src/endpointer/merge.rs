//! The endpointer's merge: the new endpoint set from the old one and a new instance list.

use std::sync::Arc;

use super::Factory;
use crate::Instance;
use crate::endpoint::Endpoint;
use crate::instance::SharedInstance;
use crate::lb::EndpointState;

/// What [`merge`] made.
pub(super) struct Merged<S> {
    /// The new endpoints, sorted by identity.
    pub(super) items: Vec<Endpoint<S>>,
    /// Factory calls that failed (their instances are skipped).
    pub(super) failed: u64,
    /// Old endpoints carried over unchanged: same service, state and instance (the very same
    /// entry of the very same instance list).
    pub(super) carried: usize,
}

/// Walks the old endpoints and the new instances (both sorted by identity) together. An
/// instance with the same identity and address keeps its endpoint's service and state; any
/// other gets a new endpoint with fresh state (warm when `first`: the first snapshot is not
/// slow-started).
///
/// Every endpoint of the result shows the instance of the new list, so the result is exactly
/// what a build from scratch would give, save for the services and states it keeps. Only the
/// identities and addresses are compared: weight, zone, tags and metadata need no comparison,
/// and nothing is copied or allocated per kept endpoint (its instance is a reference into the
/// shared `new` list).
pub(super) fn merge<S, F>(
    old: &[Endpoint<S>],
    new: &Arc<Vec<Instance>>,
    factory: &F,
    first: bool,
) -> Merged<S>
where
    S: Clone,
    F: Factory<S>,
{
    // Two passes. The first only reads (identities and addresses, in order on both sides), so
    // the processor overlaps its cache misses; the second takes the references of the kept
    // endpoints (atomic increments, each of which waits for every earlier memory access).
    let (kept, carried) = kept_endpoints(old, new);
    let mut merged = Merged {
        items: Vec::with_capacity(new.len()),
        failed: 0,
        carried,
    };
    for (index, (instance, kept)) in new.iter().zip(kept).enumerate() {
        let Some(shared) = SharedInstance::in_list(new, index) else {
            continue;
        };
        if let Some(existing) = kept {
            merged.items.push(existing.with_instance(shared));
            continue;
        }
        let state = Arc::new(if first {
            EndpointState::warm()
        } else {
            EndpointState::new()
        });
        match factory.make_with_state(instance, &state) {
            Ok(service) => merged
                .items
                .push(Endpoint::with_state(shared, service, state)),
            Err(error) => {
                merged.failed += 1;
                tracing::warn!(id = instance.id(), addr = instance.addr(), %error, "factory failed; instance skipped, will retry");
            }
        }
    }
    merged
}

/// For each new instance, the old endpoint it keeps: the one with the same identity and
/// address (whatever the weight, zone, tags or metadata), if any; and how many of those already
/// show the very entry of `new` they are matched with. Both sides are sorted by identity.
fn kept_endpoints<'a, S>(
    old: &'a [Endpoint<S>],
    new: &Arc<Vec<Instance>>,
) -> (Vec<Option<&'a Endpoint<S>>>, usize) {
    let mut old_iter = old.iter().peekable();
    let mut carried = 0;
    let kept = new
        .iter()
        .enumerate()
        .map(|(index, instance)| {
            // Skip the removed ones, then look at the match.
            while let Some(existing) = old_iter.peek() {
                match existing.instance().id().cmp(instance.id()) {
                    std::cmp::Ordering::Less => {
                        old_iter.next();
                    }
                    std::cmp::Ordering::Equal => {
                        let kept = old_iter
                            .next()
                            .filter(|e| e.instance().addr() == instance.addr());
                        if kept.is_some_and(|e| e.instance.is_at(new, index)) {
                            carried += 1;
                        }
                        return kept;
                    }
                    std::cmp::Ordering::Greater => break,
                }
            }
            None
        })
        .collect();
    (kept, carried)
}
