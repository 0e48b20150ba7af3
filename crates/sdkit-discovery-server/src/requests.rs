//! Request counters: one per (route, HTTP code, envelope status), every label from a fixed
//! list. Connections count each answer here; the exposition (`metrics`) reads them.
//! This sits below the shared state and the handlers, and reaches neither.

use hyper::Response;
use sdkit_discovery_proto::Endpoint;
use std::sync::atomic::{AtomicU64, Ordering};

/// Route labels: the ten API paths, then the dashboard, then everything else.
const ROUTES: usize = Endpoint::ALL.len() + 2;
const ROUTE_UI: usize = Endpoint::ALL.len();
const ROUTE_OTHER: usize = Endpoint::ALL.len() + 1;

/// HTTP status codes the server writes; the last slot is `other`.
const HTTP_CODES: [u16; 8] = [200, 401, 403, 404, 405, 413, 415, 503];
/// Envelope codes (`kratos-status-code`) the server writes; then `none` and `other`.
const STATUSES: [i32; 7] = [0, -304, -400, -404, -409, -500, -509];
const CODE_SLOTS: usize = HTTP_CODES.len() + 1;
const STATUS_SLOTS: usize = STATUSES.len() + 2;
const STATUS_NONE: usize = STATUSES.len();
const STATUS_OTHER: usize = STATUSES.len() + 1;

/// The route label of a request path: an index into a fixed list, never the path itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Route(usize);

impl Route {
    /// The route of `path`.
    pub(crate) fn of(path: &str) -> Route {
        if let Some(endpoint) = Endpoint::from_path(path) {
            let i = Endpoint::ALL.iter().position(|e| *e == endpoint);
            return Route(i.unwrap_or(ROUTE_OTHER));
        }
        if path == "/ui" || path.starts_with("/ui/") {
            Route(ROUTE_UI)
        } else {
            Route(ROUTE_OTHER)
        }
    }

    fn label(i: usize) -> &'static str {
        match Endpoint::ALL.get(i) {
            Some(endpoint) => endpoint.path(),
            None if i == ROUTE_UI => "ui",
            None => "other",
        }
    }
}

/// Requests answered, by route, HTTP code and envelope status.
#[derive(Debug)]
pub(crate) struct Requests {
    counts: Vec<AtomicU64>,
}

impl Default for Requests {
    fn default() -> Self {
        Requests {
            counts: (0..ROUTES * CODE_SLOTS * STATUS_SLOTS)
                .map(|_| AtomicU64::new(0))
                .collect(),
        }
    }
}

impl Requests {
    /// Counts one answer to a request on `route`.
    pub(crate) fn record<B>(&self, route: Route, resp: &Response<B>) {
        let code = resp.status().as_u16();
        let code = HTTP_CODES
            .iter()
            .position(|c| *c == code)
            .unwrap_or(HTTP_CODES.len());
        let status = match resp.headers().get("kratos-status-code") {
            None => STATUS_NONE,
            Some(v) => v
                .to_str()
                .ok()
                .and_then(|s| s.parse::<i32>().ok())
                .and_then(|s| STATUSES.iter().position(|x| *x == s))
                .unwrap_or(STATUS_OTHER),
        };
        if let Some(slot) = self.counts.get(index(route.0, code, status)) {
            slot.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Every non-zero series as (route, code, status, count).
    pub(crate) fn series(&self) -> impl Iterator<Item = (&'static str, String, String, u64)> + '_ {
        (0..ROUTES).flat_map(move |r| {
            (0..CODE_SLOTS).flat_map(move |c| {
                (0..STATUS_SLOTS).filter_map(move |s| {
                    let n = self.counts[index(r, c, s)].load(Ordering::Relaxed);
                    (n > 0).then(|| (Route::label(r), code_label(c), status_label(s), n))
                })
            })
        })
    }
}

fn index(route: usize, code: usize, status: usize) -> usize {
    (route * CODE_SLOTS + code) * STATUS_SLOTS + status
}

fn code_label(i: usize) -> String {
    HTTP_CODES
        .get(i)
        .map_or_else(|| "other".to_owned(), u16::to_string)
}

fn status_label(i: usize) -> String {
    match STATUSES.get(i) {
        Some(s) => s.to_string(),
        None if i == STATUS_NONE => "none".to_owned(),
        None => "other".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_come_from_a_fixed_list() {
        assert_eq!(
            Route::label(Route::of("/discovery/fetch/all").0),
            "/discovery/fetch/all"
        );
        assert_eq!(Route::label(Route::of("/ui").0), "ui");
        assert_eq!(Route::label(Route::of("/ui/app.js").0), "ui");
        assert_eq!(Route::label(Route::of("/<script>x").0), "other");
        assert_eq!(Route::label(Route::of("/discovery/fetch/").0), "other");
    }

    #[test]
    fn series_index_is_a_bijection() {
        let mut seen = std::collections::HashSet::new();
        for r in 0..ROUTES {
            for c in 0..CODE_SLOTS {
                for s in 0..STATUS_SLOTS {
                    assert!(seen.insert(index(r, c, s)));
                    assert!(index(r, c, s) < ROUTES * CODE_SLOTS * STATUS_SLOTS);
                }
            }
        }
    }
}
