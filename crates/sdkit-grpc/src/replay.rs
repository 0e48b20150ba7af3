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
            trailers_sent: false,
        })
    }
}

struct AttemptBody {
    replay: Replay,
    epoch: u64,
    /// Recorded frames this attempt has sent.
    position: usize,
    trailers_sent: bool,
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
            if this.trailers_sent {
                return Poll::Ready(None);
            }
            this.trailers_sent = true;
            return Poll::Ready(shared.trailers.clone().map(|t| Ok(Frame::trailers(t))));
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
                        this.trailers_sent = true;
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
                && (self.trailers_sent || shared.trailers.is_none()))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use http_body_util::BodyExt;

    use super::*;

    /// A request body of fixed frames.
    struct Frames(VecDeque<&'static str>);

    impl Body for Frames {
        type Data = Bytes;
        type Error = tonic::Status;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
            Poll::Ready(
                self.0
                    .pop_front()
                    .map(|s| Ok(Frame::data(Bytes::from_static(s.as_bytes())))),
            )
        }
    }

    fn source(frames: &[&'static str]) -> TonicBody {
        TonicBody::new(Frames(frames.iter().copied().collect()))
    }

    async fn next(body: &mut TonicBody) -> Option<String> {
        let frame = body.frame().await?.ok()?;
        frame
            .into_data()
            .ok()
            .map(|d| String::from_utf8_lossy(&d).into_owned())
    }

    #[tokio::test]
    async fn a_later_attempt_replays_then_continues_where_the_source_stopped() {
        let replay = Replay::new(source(&["a", "b", "c"]), 1024);
        let mut first = replay.attempt();
        assert_eq!(next(&mut first).await.as_deref(), Some("a"));
        assert_eq!(next(&mut first).await.as_deref(), Some("b"));
        // The first attempt fails after two frames; the second replays them, then reads on.
        let mut second = replay.attempt();
        assert_eq!(
            next(&mut first).await,
            None,
            "a superseded attempt reads as ended"
        );
        let mut seen = Vec::new();
        while let Some(s) = next(&mut second).await {
            seen.push(s);
        }
        assert_eq!(seen, ["a", "b", "c"]);
        assert!(replay.can_replay());
        let third: Vec<u8> = replay
            .attempt()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        assert_eq!(third, b"abc");
    }

    #[tokio::test]
    async fn more_than_the_limit_is_sent_but_no_longer_replayable() {
        let replay = Replay::new(source(&["12345", "67890", "x"]), 8);
        let all: Vec<u8> = replay
            .attempt()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        assert_eq!(
            all, b"1234567890x",
            "the first attempt still sends everything"
        );
        assert!(!replay.can_replay());
    }
}
