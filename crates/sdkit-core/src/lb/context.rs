//! [`PickContext`]: what a request tells the balancer.

use std::hash::{Hash, Hasher};

use crate::endpoint::EndpointKey;

/// What a request tells the balancer: a hash key (consistent hashing), the caller's zone (zone
/// preference), endpoints to avoid (a retry avoids the endpoint that just failed when another
/// is ready). Balancers ignore what they do not use; [`PickContext::default`] is "nothing".
///
/// ```
/// use sdkit_core::EndpointKey;
/// use sdkit_core::lb::PickContext;
///
/// let failed = [EndpointKey::of("web-1")];
/// let cx = PickContext::new().with_zone("sh001").with_hash_key("user-42").with_avoid(&failed);
/// assert_eq!(cx.zone(), Some("sh001"));
/// assert!(cx.avoids(EndpointKey::of("web-1")));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct PickContext<'a> {
    hash: Option<u64>,
    zone: Option<&'a str>,
    avoid: &'a [EndpointKey],
}

/// The empty context, as a constant (a pick without a context passes it by reference without
/// building one on the stack).
pub(crate) const NO_CONTEXT: &PickContext<'static> = &PickContext::new();

impl<'a> PickContext<'a> {
    /// An empty context.
    pub const fn new() -> Self {
        PickContext {
            hash: None,
            zone: None,
            avoid: &[],
        }
    }

    /// Sets the request's hash (consistent-hashing balancers map it onto an endpoint).
    pub const fn with_hash(mut self, hash: u64) -> Self {
        self.hash = Some(hash);
        self
    }

    /// Sets the request's hash when there is one (`None` leaves the context without a hash):
    /// for callers that carry an optional hash.
    pub const fn with_optional_hash(mut self, hash: Option<u64>) -> Self {
        self.hash = hash;
        self
    }

    /// Sets the hash from any hashable key (a stable hash: FNV-1a over the key's `Hash` bytes).
    pub fn with_hash_key(self, key: impl Hash) -> Self {
        let mut hasher = Fnv(0xcbf2_9ce4_8422_2325);
        key.hash(&mut hasher);
        self.with_hash(hasher.finish())
    }

    /// Sets the caller's zone.
    pub const fn with_zone(mut self, zone: &'a str) -> Self {
        self.zone = Some(zone);
        self
    }

    /// Endpoints to avoid while another ready one exists.
    pub const fn with_avoid(mut self, avoid: &'a [EndpointKey]) -> Self {
        self.avoid = avoid;
        self
    }

    /// The request's hash.
    pub fn hash(&self) -> Option<u64> {
        self.hash
    }

    /// The caller's zone.
    pub fn zone(&self) -> Option<&'a str> {
        self.zone
    }

    /// The endpoints to avoid.
    pub fn avoid(&self) -> &'a [EndpointKey] {
        self.avoid
    }

    /// `true` when `key` is to be avoided.
    #[inline]
    pub fn avoids(&self, key: EndpointKey) -> bool {
        self.avoid.contains(&key)
    }
}

struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}
