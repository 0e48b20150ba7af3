//! Instance status (1 = UP, 2 = WAITING) and the bitmask filter reads use.

/// The status of a registered instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// 1: receives traffic. Long polls return UP instances only.
    Up,
    /// 2: registered but intentionally out of traffic.
    Waiting,
}

impl Status {
    /// The wire value (1 or 2).
    pub fn as_u32(self) -> u32 {
        match self {
            Status::Up => 1,
            Status::Waiting => 2,
        }
    }

    /// Parses a wire value; anything but 1 or 2 is `None`.
    pub fn from_u32(value: u32) -> Option<Status> {
        match value {
            1 => Some(Status::Up),
            2 => Some(Status::Waiting),
            _ => None,
        }
    }
}

/// The `status` parameter of `fetch`/`fetchs`: a bitmask (1 = UP, 2 = WAITING, 3 = both).
///
/// An instance matches when `mask & instance.status != 0`.
///
/// ```
/// use sdkit_discovery_proto::StatusFilter;
/// assert!(StatusFilter(3).matches(2));
/// assert!(!StatusFilter::UP.matches(2));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatusFilter(pub u32);

impl StatusFilter {
    /// UP instances only (what long polls use).
    pub const UP: StatusFilter = StatusFilter(1);
    /// UP and WAITING instances.
    pub const ALL: StatusFilter = StatusFilter(3);

    /// Whether an instance with wire status `status` passes the filter.
    pub fn matches(self, status: u32) -> bool {
        self.0 & status != 0
    }
}
