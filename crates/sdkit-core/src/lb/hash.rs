//! Consistent hashing by a request key.

mod maglev;
