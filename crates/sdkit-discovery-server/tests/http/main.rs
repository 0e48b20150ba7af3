//! HTTP tests of the embedded discovery server: each talks to a real server on 127.0.0.1:0.

mod attack;
mod common;
mod fixes;
mod hostile;
mod lease;
mod limits;
mod load;
mod long_poll;
mod ownership;
mod protocol;
mod reference;
mod sequences;
mod shutdown;
