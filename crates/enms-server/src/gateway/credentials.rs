//! Streams end when their credential does. A WebSocket or SSE stream is
//! authorised at its handshake; without this, one opened with a session
//! that is then signed out, expires, or belongs to a user who is disabled —
//! or with an API token that is then revoked — would go on receiving
//! events until it reconnected.
//!
//! Each open stream registers its credential (the SHA-256 its guard looked
//! up) here and holds a cancellation token shared by every stream of that
//! credential. A sign-out on this instance ends them at once
//! ([`Credentials::end`]); a sweep every `token_cache` re-checks each
//! distinct credential through the guard's cached lookup and ends those no
//! longer valid: a revocation or a user change anywhere, and a session's
//! expiry, reach every instance's streams within two cache periods. The
//! sweep costs one cached lookup per distinct credential, not per stream.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

struct Entry {
    session: bool,
    ended: CancellationToken,
    streams: usize,
    /// Which registration of the credential this is: a stream of an ended
    /// one must not count against a later one.
    generation: u64,
}

/// The credentials of the open streams.
#[derive(Clone, Default)]
pub struct Credentials {
    entries: Arc<Mutex<HashMap<String, Entry>>>,
    generations: Arc<std::sync::atomic::AtomicU64>,
}

/// A stream's registration: released when the stream's permit drops.
pub struct Registration {
    hash: String,
    generation: u64,
    credentials: Credentials,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut entries = self.credentials.lock();
        if let Some(e) = entries.get_mut(&self.hash).filter(|e| e.generation == self.generation) {
            e.streams -= 1;
            if e.streams == 0 {
                entries.remove(&self.hash);
            }
        }
    }
}

impl Credentials {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a stream of the credential `hash`; the token is cancelled
    /// when the credential ends.
    pub fn register(&self, hash: &str, session: bool) -> (Registration, CancellationToken) {
        let mut entries = self.lock();
        let entry = entries.entry(hash.to_owned()).or_insert_with(|| Entry {
            session,
            ended: CancellationToken::new(),
            streams: 0,
            generation: self.generations.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        });
        entry.streams += 1;
        let (ended, generation) = (entry.ended.clone(), entry.generation);
        drop(entries);
        (Registration { hash: hash.to_owned(), generation, credentials: self.clone() }, ended)
    }

    /// Ends every stream of the credential.
    pub fn end(&self, hash: &str) {
        if let Some(e) = self.lock().remove(hash) {
            e.ended.cancel();
        }
    }

    /// Each credential with open streams, and whether it is a session.
    pub fn open(&self) -> Vec<(String, bool)> {
        self.lock().iter().map(|(h, e)| (h.clone(), e.session)).collect()
    }
}

/// Every `token_cache`, ends the streams whose credential no longer lets
/// its caller in, until `stop`.
pub async fn sweep(credentials: Credentials, auth: Arc<crate::auth::Auth>, stop: CancellationToken) {
    let every = auth.config.cache_ttl.max(std::time::Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.cancelled() => return,
        }
        for (hash, session) in credentials.open() {
            if !auth.still_valid(&hash, session).await {
                tracing::info!("streams of an ended credential closed");
                credentials.end(&hash);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_credential_ends_all_its_streams_and_is_forgotten_with_the_last() {
        let c = Credentials::default();
        let (first, a) = c.register("h1", true);
        let (_second, b) = c.register("h1", true);
        let (_other, other) = c.register("h2", false);
        assert_eq!(c.open().len(), 2);
        drop(first);
        assert_eq!(c.open().len(), 2, "h1 still has a stream");
        c.end("h1");
        assert!(a.is_cancelled() && b.is_cancelled() && !other.is_cancelled());
        assert_eq!(c.open(), vec![("h2".to_owned(), false)]);
        // A stream of the ended registration leaving does not count against
        // a new one of the same credential.
        let (_again, fresh) = c.register("h1", true);
        drop(_second);
        assert!(!fresh.is_cancelled());
        assert_eq!(c.open().len(), 2, "the new registration stays");
    }
}
