//! A request body that can be sent again: what retries and transparent retries need.
//!
//! The first attempt reads the caller's body and keeps a copy of each frame (up to a size
//! limit, 256 KiB by default as gRPC-go); a later attempt replays the copy, then continues
//! reading the caller's body where the previous attempt stopped — so streaming requests work
//! too. Once more than the limit was read, the body can no longer be replayed and the call is
//! not retried. Only the newest attempt's body may read; an older one reads as ended.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use tonic::body::Body as TonicBody;

#[derive(Debug)]
struct Shared {
    source: TonicBody,
    recorded: Vec<Bytes>,
    recorded_len: usize,
    trailers: Option<HeaderMap>,
    source_done: bool,
    overflowed: bool,
    /// The attempt allowed to read.
    epoch: u64,
    limit: usize,
}

/// The caller's body, shared by a call's attempts.
#[derive(Debug, Clone)]
pub(crate) struct Replay {
    shared: Arc<Mutex<Shared>>,
}

impl Replay {
    pub(crate) fn new(source: TonicBody, limit: usize) -> Self {
        let source_done = source.is_end_stream();
        Replay {
            shared: Arc::new(Mutex::new(Shared {
                source,
                recorded: Vec::new(),
                recorded_len: 0,
                trailers: None,
                source_done,
                overflowed: false,
                epoch: 0,
                limit,
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `true` while every frame read so far is kept.
    pub(crate) fn can_replay(&self) -> bool {
        !self.lock().overflowed
    }

    /// The body of the next attempt (earlier attempts' bodies stop reading).
    pub(crate) fn attempt(&self) -> TonicBody {
        let epoch = {
            let mut shared = self.lock();
            shared.epoch += 1;
            shared.epoch
        };
        TonicBody::new(AttemptBody {
            replay: self.clone(),
            epoch,
            position: 0,
        })
    }
}

struct AttemptBody {
    replay: Replay,
    epoch: u64,
    /// Recorded frames this attempt has sent.
    position: usize,
}

impl Body for AttemptBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let this = &mut *self;
        let mut shared = this.replay.lock();
        if shared.epoch != this.epoch {
            return Poll::Ready(None);
        }
        if let Some(frame) = shared.recorded.get(this.position) {
            this.position += 1;
            return Poll::Ready(Some(Ok(Frame::data(frame.clone()))));
        }
        if shared.source_done {
            return Poll::Ready(shared.trailers.take().map(|t| Ok(Frame::trailers(t))));
        }
        let polled = Pin::new(&mut shared.source).poll_frame(cx);
        match polled {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                shared.source_done = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(status))) => {
                // The caller's own body failed: no attempt can succeed with it.
                shared.overflowed = true;
                Poll::Ready(Some(Err(status)))
            }
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => {
                    if !shared.overflowed && shared.recorded_len + data.len() <= shared.limit {
                        shared.recorded_len += data.len();
                        shared.recorded.push(data.clone());
                        this.position += 1;
                    } else {
                        shared.overflowed = true;
                    }
                    Poll::Ready(Some(Ok(Frame::data(data))))
                }
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers() {
                        shared.source_done = true;
                        shared.trailers = Some(trailers.clone());
                        return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                    }
                    Poll::Ready(None)
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        let shared = self.replay.lock();
        shared.epoch != self.epoch
            || (shared.source_done
                && self.position >= shared.recorded.len()
                && shared.trailers.is_none())
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
