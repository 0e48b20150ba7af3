//! The response body: a shared list of byte chunks, written without copying.
//!
//! A `fetch` answer is a small envelope prefix, the app's serialised instance list (shared
//! with every other answer about the same app until it changes) and a suffix. Hyper writes
//! the chunks with vectored writes, so the shared list is never copied into a new buffer;
//! polls woken together clone one `Arc` of the same chunks.

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// A response body made of shared chunks.
#[derive(Debug, Clone)]
pub(crate) struct Chunks {
    chunks: Arc<[Bytes]>,
    next: usize,
    remaining: u64,
}

impl Chunks {
    /// A body of `chunks`, in order.
    pub(crate) fn new(chunks: Arc<[Bytes]>) -> Chunks {
        let remaining = chunks.iter().map(|c| c.len() as u64).sum();
        Chunks {
            chunks,
            next: 0,
            remaining,
        }
    }

    /// Bytes not yet yielded (the whole body before it is written).
    pub(crate) fn len(&self) -> usize {
        usize::try_from(self.remaining).unwrap_or(usize::MAX)
    }

    /// The whole body, concatenated (tests and the miss path of small replies).
    #[cfg(test)]
    pub(crate) fn concat(&self) -> Vec<u8> {
        self.chunks.concat()
    }
}

impl From<Bytes> for Chunks {
    fn from(b: Bytes) -> Chunks {
        Chunks::new(Arc::from([b]))
    }
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        while let Some(chunk) = this.chunks.get(this.next) {
            this.next += 1;
            if !chunk.is_empty() {
                this.remaining -= chunk.len() as u64;
                return Poll::Ready(Some(Ok(Frame::data(chunk.clone()))));
            }
        }
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn chunks_are_yielded_in_order_with_an_exact_size() {
        let body = Chunks::new(Arc::from([
            Bytes::from_static(b"{\"a\":"),
            Bytes::new(),
            Bytes::from_static(b"1}"),
        ]));
        assert_eq!(body.size_hint().exact(), Some(7));
        assert_eq!(body.concat(), b"{\"a\":1}");
        let collected = body.clone().collect().await.unwrap().to_bytes();
        assert_eq!(&collected[..], b"{\"a\":1}");
        let empty = Chunks::from(Bytes::new());
        assert!(empty.is_end_stream());
    }
}
