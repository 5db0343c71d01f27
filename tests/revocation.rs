//! `revoke()` and what it does to fetches under way, through the public API: a
//! source that stands in for IBSSO sessions (each fetch ends the session it replaces) and logs
//! every session it ends, so a test can tell which credential is still alive at the server.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use infobip_auth::source::TokenSource;
use infobip_auth::{BoxError, Credential, Error, ErrorKind, InfobipAuthLayer};

const HOUR: Duration = Duration::from_secs(3600);

/// What the server saw: how many sessions were made, and which were ended.
#[derive(Debug, Default)]
struct Log {
    made: AtomicUsize,
    ended: Mutex<Vec<String>>,
}

impl Log {
    fn ended(&self) -> Vec<String> {
        self.ended.lock().map(|e| e.clone()).unwrap_or_default()
    }

    fn end(&self, credential: &Credential) {
        if let Ok(mut ended) = self.ended.lock() {
            ended.push(credential.expose_token().to_owned());
        }
    }
}

/// Sets its flag when dropped: the source is dropped with the last handle to its cache.
#[derive(Debug)]
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Sessions `session-1`, `session-2`, ..., each made `delay` after the one it replaces ended.
#[derive(Debug)]
struct Sessions {
    log: Arc<Log>,
    delay: Duration,
    /// The `DELETE` of a revocation never gets an answer.
    revoke_hangs: bool,
    /// How long the `DELETE` of a revocation takes.
    revoke_delay: Duration,
    _dropped: DropFlag,
}

impl Sessions {
    /// The source, its log, and a flag set once it is dropped.
    fn new(delay: Duration) -> (Self, Arc<Log>, Arc<AtomicBool>) {
        let log = Arc::new(Log::default());
        let dropped = Arc::new(AtomicBool::new(false));
        let source = Self {
            log: Arc::clone(&log),
            delay,
            revoke_hangs: false,
            revoke_delay: Duration::ZERO,
            _dropped: DropFlag(Arc::clone(&dropped)),
        };
        (source, log, dropped)
    }
}

impl TokenSource for Sessions {
    async fn fetch(&self, previous: Option<&Credential>) -> Result<Credential, Error> {
        if let Some(previous) = previous {
            self.log.end(previous);
        }
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let n = self.log.made.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(Credential::new("IBSSO", &format!("session-{n}"))?.expires_in(HOUR))
    }

    async fn revoke(&self, credential: &Credential) -> Result<(), Error> {
        if self.revoke_hangs {
            std::future::pending::<()>().await;
        }
        if !self.revoke_delay.is_zero() {
            tokio::time::sleep(self.revoke_delay).await;
        }
        self.log.end(credential);
        Ok(())
    }

    fn ends_previous(&self) -> bool {
        true
    }
}

/// A runtime of its own on the paused clock, for tests that need more than one or none.
fn paused_runtime() -> Result<tokio::runtime::Runtime, BoxError> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()?)
}

/// Polls `future` once, with a waker that does nothing.
fn poll_once<F: Future>(future: Pin<&mut F>) -> Poll<F::Output> {
    future.poll(&mut Context::from_waker(Waker::noop()))
}

/// Lets spawned tasks run without moving the paused clock.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

/// A `revoke()` whose runtime shut down before its task ran (a `#[tokio::test]` that ended
/// right after calling it) ended nothing and took nothing: the next `revoke()`, on a runtime
/// that runs, ends the session. It used to wait for the dead revocation instead, report its
/// runtime's shutdown as its own error, and leave the session alive at the server.
#[test]
fn a_revocation_whose_runtime_ended_before_it_ran_is_not_waited_on() -> Result<(), BoxError> {
    let (source, log, _) = Sessions::new(Duration::ZERO);
    let layer = InfobipAuthLayer::new(source);
    let dying = paused_runtime()?;
    dying.block_on(layer.credential())?;
    {
        let _inside = dying.enter();
        let revoke = pin!(layer.revoke());
        assert!(poll_once(revoke).is_pending(), "its task has not run");
    }
    drop(dying);

    let revoked = paused_runtime()?.block_on(layer.revoke());
    assert!(revoked.is_ok(), "{revoked:?}");
    assert_eq!(log.ended(), ["session-1"], "the session is left alive");
    Ok(())
}

/// Without a runtime a revocation runs as its callers poll it; one given up half-way (its
/// `DELETE` unanswered) must not keep the cache alive once every handle to it is dropped. The
/// cache held the revocation, which held the cache: neither (nor the source, nor the session
/// the revocation took) was ever dropped.
#[test]
fn a_revocation_given_up_outside_a_runtime_keeps_no_cache_alive() -> Result<(), BoxError> {
    let (mut source, _, dropped) = Sessions::new(Duration::ZERO);
    source.revoke_hangs = true;
    let layer = InfobipAuthLayer::new(source);
    paused_runtime()?.block_on(layer.credential())?;
    {
        let revoke = pin!(layer.revoke());
        assert!(poll_once(revoke).is_pending(), "the DELETE is unanswered");
    }
    drop(layer);
    assert!(
        dropped.load(Ordering::SeqCst),
        "the cache outlived its handles"
    );
    Ok(())
}

/// The same layer, never revoked: dropping it drops the source (what the test above relies on).
#[test]
fn a_dropped_layer_drops_its_source() -> Result<(), BoxError> {
    let (source, _, dropped) = Sessions::new(Duration::ZERO);
    let layer = InfobipAuthLayer::new(source);
    paused_runtime()?.block_on(layer.credential())?;
    drop(layer);
    assert!(dropped.load(Ordering::SeqCst));
    Ok(())
}

/// A request waiting for a session that `revoke()` ends as it arrives does not fall back on
/// the session its renewal ended, however many times that happens while it waits. After its
/// last look (four revocations in a row, each while it waits for a renewal of a session made
/// after the one before), it used to be handed the session that renewal had just ended.
#[tokio::test(start_paused = true)]
async fn a_request_waiting_through_revocations_never_gets_an_ended_session() -> Result<(), BoxError>
{
    let (source, log, _) = Sessions::new(Duration::from_secs(1));
    let layer = InfobipAuthLayer::new(source);
    let mut waiting = pin!(layer.credential());
    assert!(
        poll_once(waiting.as_mut()).is_pending(),
        "its session is made"
    );
    let mut result = None;
    for _ in 0..4 {
        // Ends the session the request waits for, as it arrives.
        layer.revoke().await?;
        // Others make a session and start its renewal, which ends it: the request's next look
        // finds the renewal, with that session to fall back on.
        layer.credential().await?;
        tokio::spawn({
            let layer = layer.clone();
            async move { layer.refresh().await }
        });
        settle().await;
        if let Poll::Ready(got) = poll_once(waiting.as_mut()) {
            result = Some(got);
            break;
        }
    }
    match result.ok_or("still waiting after four revocations")? {
        Ok(credential) => {
            let token = credential.expose_token().to_owned();
            assert!(!log.ended().contains(&token), "handed {token}, ended");
        }
        Err(err) => assert_eq!(err.kind(), &ErrorKind::Transport, "{err}"),
    }
    Ok(())
}

/// Without a runtime, `revoke()` ends the session as its caller polls it, and takes it: the
/// next fetch, on a runtime, does not end it again.
#[test]
fn a_revoke_outside_a_runtime_ends_the_session_once() -> Result<(), BoxError> {
    let (source, log, _) = Sessions::new(Duration::ZERO);
    let layer = InfobipAuthLayer::new(source);
    let runtime = paused_runtime()?;
    runtime.block_on(layer.credential())?;
    let revoked = poll_once(pin!(layer.revoke()));
    assert!(matches!(revoked, Poll::Ready(Ok(()))), "{revoked:?}");
    assert_eq!(log.ended(), ["session-1"]);
    let next = runtime.block_on(layer.credential())?;
    assert_eq!(next.expose_token(), "session-2");
    assert_eq!(log.ended(), ["session-1"], "ended twice");
    Ok(())
}

/// A revocation cut off half-way by its runtime's shutdown (a `#[tokio::test]` that timed it
/// out and ended) gives its session back: the next fetch, on another runtime, ends it before
/// making a new one.
#[test]
fn a_revocation_cut_off_by_its_runtimes_shutdown_leaves_its_session_to_the_next_fetch()
-> Result<(), BoxError> {
    let (mut source, log, _) = Sessions::new(Duration::ZERO);
    source.revoke_delay = Duration::from_secs(2);
    let layer = InfobipAuthLayer::new(source);
    let dying = paused_runtime()?;
    dying.block_on(layer.credential())?;
    let given_up = dying
        .block_on(async { tokio::time::timeout(Duration::from_secs(1), layer.revoke()).await });
    assert!(given_up.is_err(), "the DELETE takes two seconds");
    drop(dying);
    assert!(log.ended().is_empty());

    let next = paused_runtime()?.block_on(layer.credential())?;
    assert_eq!(next.expose_token(), "session-2");
    assert_eq!(log.ended(), ["session-1"], "session-1 is left alive");
    Ok(())
}
