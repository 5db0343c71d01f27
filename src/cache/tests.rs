use std::time::Duration;

use super::*;
use crate::test_helpers::{TestSource, transient};
use crate::{Error, ErrorKind};

const HOUR: Duration = Duration::from_secs(3600);
const MINUTE: Duration = Duration::from_secs(60);

fn cache(source: &TestSource) -> CredentialCache {
    CredentialCache::new(
        SharedTokenSource::from(source.clone()),
        RefreshPolicy::default(),
    )
}

fn token(result: &Result<(Credential, u64), Error>) -> String {
    match result {
        Ok((credential, _)) => credential.expose_token().to_owned(),
        Err(err) => format!("error: {err}"),
    }
}

/// Lets spawned tasks run without moving the paused clock.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_thousand_callers_at_an_empty_cache_cause_one_fetch() {
    let source = TestSource::expiring(HOUR);
    source.delay(Duration::from_millis(50));
    let cache = cache(&source);
    let callers: Vec<_> = (0..1000)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.get().await })
        })
        .collect();
    for caller in callers {
        let result = caller
            .await
            .unwrap_or_else(|e| Err(Error::new(ErrorKind::Transport).with_source(e)));
        assert_eq!(token(&result), "token-1");
    }
    assert_eq!(source.fetches(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_thousand_callers_at_an_expired_credential_cause_one_fetch() {
    let source = TestSource::expiring(MINUTE);
    let cache = cache(&source);
    assert_eq!(token(&cache.get().await), "token-1");
    tokio::time::advance(MINUTE * 2).await;
    source.delay(Duration::from_millis(50));
    let callers: Vec<_> = (0..1000)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.get().await })
        })
        .collect();
    for caller in callers {
        let result = caller
            .await
            .unwrap_or_else(|e| Err(Error::new(ErrorKind::Transport).with_source(e)));
        assert_eq!(token(&result), "token-2");
    }
    assert_eq!(source.fetches(), 2);
}

#[tokio::test(start_paused = true)]
async fn fresh_credentials_are_served_from_the_private_copy() {
    let source = TestSource::expiring(HOUR);
    let cache = cache(&source);
    let mut local = Local::default();
    assert!(cache.cached(&local).is_none());
    assert!(matches!(cache.lookup(Some(&mut local)), Lookup::Wait(_)));
    settle().await;
    assert!(matches!(cache.lookup(Some(&mut local)), Lookup::Ready(..)));
    let (header, _) = cache.cached(&local).map(|(h, id)| (h.clone(), id)).unzip();
    assert_eq!(
        header.as_ref().map(|h| h.as_bytes()),
        Some(&b"Bearer token-1"[..])
    );
    assert_eq!(source.fetches(), 1);
}

#[tokio::test(start_paused = true)]
async fn refresh_ahead_serves_the_current_credential_and_fetches_once_in_the_background() {
    let source = TestSource::expiring(MINUTE);
    let cache = cache(&source);
    let mut local = Local::default();
    assert_eq!(token(&cache.get().await), "token-1");
    // Into the advisory window (45 s minus up to 3 s of jitter) but before the mandatory one (54 s).
    tokio::time::advance(Duration::from_secs(50)).await;
    settle().await;
    assert!(
        cache.cached(&local).is_none(),
        "the watcher must invalidate private copies"
    );
    source.delay(Duration::from_secs(1));
    for _ in 0..100 {
        match cache.lookup(Some(&mut local)) {
            Lookup::Ready(credential, _) => assert_eq!(credential.expose_token(), "token-1"),
            _ => panic!("a caller waited inside the refresh-ahead window"),
        }
    }
    settle().await;
    tokio::time::advance(Duration::from_millis(1100)).await;
    settle().await;
    assert_eq!(source.fetches(), 2);
    assert_eq!(token(&cache.get().await), "token-2");
}

/// The header a request on the hot path would send now, if any.
fn hot(cache: &CredentialCache, local: &Local) -> Option<String> {
    let (header, _) = cache.cached(local)?;
    header.to_str().ok().map(str::to_owned)
}

#[tokio::test(start_paused = true)]
async fn while_a_refresh_ahead_runs_requests_are_back_on_the_hot_path() {
    let source = TestSource::expiring(HOUR);
    let cache = cache(&source);
    let mut local = Local::default();
    drop(cache.lookup(Some(&mut local)));
    settle().await;
    drop(cache.lookup(Some(&mut local)));
    assert_eq!(hot(&cache, &local).as_deref(), Some("Bearer token-1"));
    // Into the refresh-ahead window (45 min minus up to 3 of jitter; requests wait from 54).
    tokio::time::advance(Duration::from_secs(50 * 60)).await;
    settle().await;
    assert_eq!(
        hot(&cache, &local),
        None,
        "the deadline sends requests to the slow path"
    );
    source.delay(Duration::from_secs(1));
    assert!(matches!(cache.lookup(Some(&mut local)), Lookup::Ready(..)));
    assert_eq!(
        hot(&cache, &local).as_deref(),
        Some("Bearer token-1"),
        "the renewal has started: the private copy serves meanwhile"
    );
    settle().await;
    tokio::time::advance(Duration::from_millis(1100)).await;
    settle().await;
    assert_eq!(hot(&cache, &local), None, "the new credential ends it");
    drop(cache.lookup(Some(&mut local)));
    assert_eq!(hot(&cache, &local).as_deref(), Some("Bearer token-2"));
    assert_eq!(source.fetches(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_failed_refresh_ahead_is_tried_again_once_its_backoff_ends() {
    let source = TestSource::expiring(HOUR);
    let cache = cache(&source);
    let mut local = Local::default();
    assert_eq!(token(&cache.get().await), "token-1");
    tokio::time::advance(Duration::from_secs(50 * 60)).await;
    settle().await;
    source.fail_next([transient()]);
    drop(cache.lookup(Some(&mut local)));
    settle().await;
    assert_eq!(source.fetches(), 2, "one failed background fetch");
    // During the backoff (1 s at most) the old credential serves from the hot path.
    drop(cache.lookup(Some(&mut local)));
    assert_eq!(hot(&cache, &local).as_deref(), Some("Bearer token-1"));
    tokio::time::advance(Duration::from_secs(1)).await;
    settle().await;
    assert_eq!(
        hot(&cache, &local),
        None,
        "the end of the backoff sends requests back"
    );
    drop(cache.lookup(Some(&mut local)));
    settle().await;
    assert_eq!(source.fetches(), 3, "and the next request tries again");
    drop(cache.lookup(Some(&mut local)));
    assert_eq!(hot(&cache, &local).as_deref(), Some("Bearer token-3"));
}

/// A renewal that ended the credential it replaces (an IBSSO session deleted, then the new
/// one refused) leaves nothing to serve: neither the hot path, nor the slow path, nor a waiter
/// falls back on the ended credential, and the next fetch is not told to end it again.
#[tokio::test(start_paused = true)]
async fn a_failed_renewal_that_ended_the_credential_stops_serving_it() {
    let source = TestSource::expiring(HOUR);
    let cache = cache(&source);
    let mut local = Local::default();
    assert_eq!(token(&cache.get().await), "token-1");
    drop(cache.lookup(Some(&mut local)));
    assert_eq!(hot(&cache, &local).as_deref(), Some("Bearer token-1"));
    // In the waiting window, so the waiter has the old credential to fall back on.
    tokio::time::advance(Duration::from_secs(59 * 60 + 30)).await;
    source.fail_next([transient().with_previous_ended()]);
    let failed = cache.get().await;
    assert!(
        failed.is_err(),
        "fell back on the ended credential: {}",
        token(&failed)
    );
    assert_eq!(
        hot(&cache, &local),
        None,
        "the hot path serves the ended credential"
    );
    assert!(
        matches!(cache.lookup(None), Lookup::Failed(_)),
        "the slow path serves the ended credential"
    );
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(token(&cache.get().await), "token-3");
    assert_eq!(
        source.previous_tokens(),
        [None, Some("token-1".to_owned()), None],
        "the ended credential is ended again"
    );
}

/// A failed fetch that hands back a credential still valid (an Exchange token past half its
/// life whose refresh failed) is a failed renewal like any other: the credential is published
/// and serves from the hot path during the backoff, and when the backoff ends the next fetch is
/// asked to replace it. One that has expired meanwhile is not served: the failure is reported.
#[tokio::test(start_paused = true)]
async fn a_failed_fetch_with_a_fallback_serves_it_and_backs_off() -> Result<(), Error> {
    let source = TestSource::expiring(HOUR);
    let cache = cache(&source);
    let aging = Credential::new("Bearer", "aging")?.expires_in(HOUR);
    tokio::time::advance(50 * MINUTE).await;
    source.fail_next([transient().with_fallback(aging)]);
    assert_eq!(token(&cache.get().await), "aging");
    let mut local = Local::default();
    drop(cache.lookup(Some(&mut local)));
    assert_eq!(hot(&cache, &local).as_deref(), Some("Bearer aging"));
    settle().await;
    assert_eq!(source.fetches(), 1, "renewed again during the backoff");
    // The backoff after one failure is at most 1 s; its end sends requests to the slow path.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(hot(&cache, &local), None);
    drop(cache.lookup(Some(&mut local)));
    settle().await;
    assert_eq!(token(&cache.get().await), "token-2");
    assert_eq!(source.previous_tokens(), [None, Some("aging".to_owned())]);

    let expired = Credential::new("Bearer", "expired")?.expires_in(MINUTE);
    let cache = CredentialCache::new(
        SharedTokenSource::from(source.clone()),
        RefreshPolicy::default(),
    );
    tokio::time::advance(MINUTE).await;
    source.fail_next([transient().with_fallback(expired)]);
    let failed = cache.get().await;
    assert!(
        failed.as_ref().is_err_and(Error::is_transient),
        "{}",
        token(&failed)
    );
    Ok(())
}

/// `refresh()` asks for a new credential: a failed renewal that hands back the old one serves
/// it, but reports its failure to the caller who asked.
#[tokio::test(start_paused = true)]
async fn a_refresh_that_gets_only_a_fallback_reports_its_failure() -> Result<(), Error> {
    let source = TestSource::expiring(HOUR);
    let cache = cache(&source);
    let aging = Credential::new("Bearer", "aging")?.expires_in(HOUR);
    source.fail_next([transient().with_fallback(aging)]);
    let refreshed = cache.refresh().await;
    assert!(
        refreshed.as_ref().is_err_and(Error::is_transient),
        "{}",
        token(&refreshed)
    );
    assert_eq!(token(&cache.get().await), "aging");
    assert_eq!(token(&cache.refresh().await), "token-2");
    Ok(())
}

#[test]
fn a_fetch_whose_runtime_ended_before_it_ran_is_not_waited_on() -> Result<(), Error> {
    let source = TestSource::expiring(HOUR);
    let cache = cache(&source);
    let dying = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|_| Error::new(ErrorKind::Transport))?;
    {
        let _inside = dying.enter();
        // Spawned on a runtime nobody drives, then dropped with it, never polled.
        assert!(matches!(cache.lookup(None), Lookup::Wait(_)));
    }
    drop(dying);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|_| Error::new(ErrorKind::Transport))?;
    let fetched = runtime.block_on(cache.get());
    assert_eq!(token(&fetched), "token-1");
    Ok(())
}

/// How long the credentials of the real-time tests below live: long enough to be still fresh
/// when first checked on a loaded machine.
const LIFETIME: Duration = Duration::from_secs(1);

fn runtime(time: bool) -> Result<tokio::runtime::Runtime, Error> {
    let mut builder = tokio::runtime::Builder::new_current_thread();
    if time {
        builder.enable_time();
    }
    built(&mut builder)
}

/// A runtime of its own on tokio's paused clock, for tests that need more than one.
fn paused_runtime() -> Result<tokio::runtime::Runtime, Error> {
    built(
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true),
    )
}

fn built(builder: &mut tokio::runtime::Builder) -> Result<tokio::runtime::Runtime, Error> {
    builder
        .build()
        .map_err(|e| Error::new(ErrorKind::Transport).with_source(e))
}

/// Fetches a credential that lives [`LIFETIME`] on `runtime` and lets `local` serve it; the
/// cache's watcher of its deadlines is spawned on `runtime` too.
fn adopted(
    source: &TestSource,
    runtime: &tokio::runtime::Runtime,
) -> Result<(CredentialCache, Local), Error> {
    let cache = cache(source);
    let mut local = Local::default();
    runtime.block_on(cache.get())?;
    let _inside = runtime.enter();
    assert!(matches!(cache.lookup(Some(&mut local)), Lookup::Ready(..)));
    assert_eq!(hot(&cache, &local).as_deref(), Some("Bearer token-1"));
    Ok((cache, local))
}

// In real time: what is pinned is what a request does after its deadline passed while nothing
// ran the watcher, which a paused clock cannot show (it moves only while the runtime runs).

#[test]
fn a_private_copy_is_not_served_past_its_deadline_when_the_runtime_is_not_driven()
-> Result<(), Error> {
    let source = TestSource::expiring(LIFETIME);
    let runtime = runtime(true)?;
    let (cache, local) = adopted(&source, &runtime)?;
    std::thread::sleep(LIFETIME);
    assert_eq!(hot(&cache, &local), None);
    Ok(())
}

#[test]
fn a_private_copy_is_not_served_past_its_deadline_once_the_watching_runtime_is_gone()
-> Result<(), Error> {
    let source = TestSource::expiring(LIFETIME);
    let first = runtime(true)?;
    let (cache, mut local) = adopted(&source, &first)?;
    drop(first);
    std::thread::sleep(LIFETIME);
    assert_eq!(hot(&cache, &local), None);
    // The slow path on another runtime fetches the successor.
    let second = runtime(true)?;
    let _inside = second.enter();
    let next = second.block_on(async { cache.lookup(Some(&mut local)).await });
    assert_eq!(token(&next), "token-2");
    assert_eq!(source.fetches(), 2);
    Ok(())
}

#[test]
fn a_private_copy_is_not_served_past_its_deadline_on_a_runtime_without_timers() -> Result<(), Error>
{
    let source = TestSource::expiring(LIFETIME);
    // The watcher cannot sleep here (tokio panics inside its task); requests must not notice.
    let runtime = runtime(false)?;
    let (cache, local) = adopted(&source, &runtime)?;
    runtime.block_on(settle());
    std::thread::sleep(LIFETIME);
    assert_eq!(hot(&cache, &local), None);
    Ok(())
}

#[test]
fn a_credential_that_never_expires_is_served_without_a_deadline() -> Result<(), Error> {
    let source = TestSource::default();
    let runtime = runtime(true)?;
    let cache = cache(&source);
    let mut local = Local::default();
    runtime.block_on(cache.get())?;
    assert!(matches!(cache.lookup(Some(&mut local)), Lookup::Ready(..)));
    assert!(local.until.is_none());
    assert_eq!(hot(&cache, &local).as_deref(), Some("Bearer token-1"));
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_credential_expired_on_arrival_is_a_failure_that_backs_off() {
    let source = TestSource::expiring(Duration::ZERO);
    let cache = cache(&source);
    for _ in 0..3 {
        let result = cache.get().await;
        assert!(
            matches!(
                result.as_ref().map_err(Error::kind),
                Err(ErrorKind::MalformedResponse { .. })
            ),
            "{}",
            token(&result)
        );
    }
    assert_eq!(source.fetches(), 1, "the next fetch waits out the backoff");
}

#[tokio::test(start_paused = true)]
async fn a_backoff_keeps_no_cache_alive() {
    let source = TestSource::expiring(HOUR);
    let cache = cache(&source);
    let key = cache.key();
    source.fail_next([transient().with_retry_after(Duration::from_secs(600))]);
    assert!(cache.get().await.is_err());
    drop(cache);
    settle().await;
    assert!(key.find().is_none(), "the backoff's timer holds the cache");
}

#[tokio::test(start_paused = true)]
async fn a_one_minute_token_is_not_refreshed_on_every_request() {
    let source = TestSource::expiring(MINUTE);
    let cache = cache(&source);
    let mut local = Local::default();
    for _ in 0..40 {
        // Ten minutes of one request every 15 s.
        drop(cache.lookup(Some(&mut local)));
        let _ = cache.get().await;
        tokio::time::advance(Duration::from_secs(15)).await;
        settle().await;
    }
    // Renewed about every 45 s: 600 s / 45 s ≈ 13, never per request.
    let fetches = source.fetches();
    assert!((10..=16).contains(&fetches), "{fetches} fetches");
}

#[tokio::test(start_paused = true)]
async fn a_late_401_for_an_old_credential_keeps_the_new_one() {
    let source = TestSource::expiring(HOUR);
    let cache = cache(&source);
    let (_, old) = cache.get().await.unwrap_or_else(|_| panic!("first fetch"));
    assert_eq!(cache.invalidate(old), Refusal::Forgotten);
    let (new, new_id) = cache.get().await.unwrap_or_else(|_| panic!("second fetch"));
    assert_eq!(new.expose_token(), "token-2");
    assert_eq!(
        cache.invalidate(old),
        Refusal::Stale,
        "a late 401 must not discard the newer credential"
    );
    let (current, id) = cache.get().await.unwrap_or_else(|_| panic!("current"));
    assert_eq!((current.expose_token(), id), ("token-2", new_id));
    assert_eq!(source.fetches(), 2);
    assert_eq!(source.previous_tokens(), [None, Some("token-1".to_owned())]);
}

#[tokio::test(start_paused = true)]
async fn a_failed_fetch_reaches_every_waiter_and_the_next_try_waits_out_the_backoff() {
    let source = TestSource::expiring(HOUR);
    source.delay(Duration::from_millis(10));
    source.fail_next([transient()]);
    let cache = cache(&source);
    let waiters: Vec<_> = (0..50)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.get().await })
        })
        .collect();
    for waiter in waiters {
        let result = waiter
            .await
            .unwrap_or_else(|e| Err(Error::new(ErrorKind::Transport).with_source(e)));
        assert!(
            matches!(
                result.as_ref().map_err(Error::kind),
                Err(ErrorKind::Timeout)
            ),
            "{}",
            token(&result)
        );
    }
    assert_eq!(source.fetches(), 1);
    // Inside the backoff (at least half of 1 s): the failure again, at once, with no fetch.
    tokio::time::advance(Duration::from_millis(400)).await;
    assert!(cache.get().await.is_err());
    assert_eq!(source.fetches(), 1);
    // After the backoff (at most 1 s): a new fetch, which succeeds.
    tokio::time::advance(Duration::from_millis(700)).await;
    assert_eq!(token(&cache.get().await), "token-2");
    assert_eq!(source.fetches(), 2);
}

#[tokio::test(start_paused = true)]
async fn backoff_doubles_and_honours_retry_after() {
    let policy = RefreshPolicy::default();
    for failures in 1..=8 {
        let full = Duration::from_secs(1 << (failures - 1)).min(Duration::from_secs(60));
        let delay = policy.backoff_delay(failures, None);
        assert!(delay >= full / 2 && delay <= full, "{failures}: {delay:?}");
    }
    let delay = policy.backoff_delay(1, Some(Duration::from_secs(30)));
    assert!(delay >= Duration::from_secs(30));
}

#[tokio::test(start_paused = true)]
async fn retry_after_spaces_the_next_fetch() {
    let source = TestSource::expiring(HOUR);
    source.fail_next([transient().with_retry_after(Duration::from_secs(20))]);
    let cache = cache(&source);
    assert!(cache.get().await.is_err());
    tokio::time::advance(Duration::from_secs(19)).await;
    let served_again = cache.get().await.err();
    // The failure served again says when the next try is: when the backoff ends.
    assert_eq!(
        served_again.and_then(|e| e.retry_after()),
        Some(Duration::from_secs(1))
    );
    assert_eq!(source.fetches(), 1);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(token(&cache.get().await), "token-2");
}

#[tokio::test(start_paused = true)]
async fn a_failure_served_during_its_backoff_says_when_it_ends() {
    let source = TestSource::expiring(HOUR);
    source.fail_next([transient()]);
    let cache = cache(&source);
    let first = cache.get().await.err();
    assert_eq!(
        first.and_then(|e| e.retry_after()),
        None,
        "the server said nothing"
    );
    let again = cache.get().await.err();
    let left = again.and_then(|e| e.retry_after());
    // The first backoff is jittered within (0.5 s, 1 s].
    assert!(
        left.is_some_and(|d| d >= Duration::from_millis(500) && d <= Duration::from_secs(1)),
        "{left:?}"
    );
}

/// A `refresh()` that fails during a backoff starts the next, longer one: the failure served
/// after it says when that one ends, not the first.
#[tokio::test(start_paused = true)]
async fn after_a_failed_refresh_the_failure_served_says_when_the_new_backoff_ends() {
    let source = TestSource::expiring(HOUR);
    source.fail_next([transient(), transient()]);
    let cache = cache(&source);
    assert!(cache.get().await.is_err());
    tokio::time::advance(Duration::from_millis(100)).await;
    assert!(cache.refresh().await.is_err());
    assert_eq!(source.fetches(), 2);
    let left = cache.get().await.err().and_then(|e| e.retry_after());
    // The second backoff is jittered within [1 s, 2 s] from the refresh.
    assert!(
        left.is_some_and(|d| d >= Duration::from_secs(1) && d <= Duration::from_secs(2)),
        "{left:?}"
    );
    tokio::time::advance(left.unwrap_or_default()).await;
    assert_eq!(token(&cache.get().await), "token-3");
}

/// A `401` to a credential that answered a refusal backs off too; arriving while the server's
/// `Retry-After` holds, it must not bring the next fetch forward.
#[tokio::test(start_paused = true)]
async fn a_refusal_during_a_retry_after_does_not_shorten_it() {
    let source = TestSource::expiring(Duration::from_secs(3));
    let cache = cache(&source);
    let (_, refused) = cache.get().await.unwrap_or_else(|_| panic!("first fetch"));
    assert_eq!(cache.invalidate(refused), Refusal::Forgotten);
    let (_, answer) = cache.get().await.unwrap_or_else(|_| panic!("second fetch"));
    // The answer expires; its renewal fails, and the server asks for 90 s.
    tokio::time::advance(Duration::from_secs(5)).await;
    source.fail_next([transient().with_retry_after(Duration::from_secs(90))]);
    assert!(cache.get().await.is_err());
    // The replay sent with the answer is refused now (a slow server): a failed renewal too.
    cache.refused_after_renewal(answer);
    tokio::time::advance(Duration::from_secs(5)).await;
    assert!(cache.get().await.is_err(), "fetched within the Retry-After");
    assert_eq!(source.fetches(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_failed_refresh_keeps_serving_a_still_valid_credential() {
    let source = TestSource::expiring(MINUTE);
    let cache = cache(&source);
    assert_eq!(token(&cache.get().await), "token-1");
    // Past the mandatory threshold (54 s), before expiry (60 s).
    tokio::time::advance(Duration::from_secs(56)).await;
    source.fail_next([transient(), transient()]);
    assert_eq!(token(&cache.get().await), "token-1");
    assert_eq!(
        token(&cache.get().await),
        "token-1",
        "served during the backoff"
    );
    tokio::time::advance(Duration::from_secs(5)).await;
    // Expired now; the backoff has passed: the next fetch fails and nothing valid is left.
    assert!(cache.get().await.is_err());
}

#[tokio::test(start_paused = true)]
async fn dropping_the_caller_does_not_cancel_the_fetch() {
    let source = TestSource::expiring(HOUR);
    source.delay(Duration::from_secs(1));
    let cache = cache(&source);
    let first = tokio::spawn({
        let cache = cache.clone();
        async move { cache.get().await }
    });
    settle().await;
    first.abort();
    tokio::time::advance(Duration::from_secs(2)).await;
    settle().await;
    assert_eq!(token(&cache.get().await), "token-1");
    assert_eq!(
        source.fetches(),
        1,
        "the fetch finished on its own and was published"
    );
}

#[tokio::test(start_paused = true)]
async fn sliding_credentials_live_while_used_and_are_replaced_after_an_idle_gap() {
    let idle = Duration::from_secs(80);
    let source = TestSource::sliding(idle);
    let cache = cache(&source);
    let mut local = Local::default();
    assert_eq!(token(&cache.get().await), "token-1");
    // Used every 20 s for ten minutes: the session never dies.
    for _ in 0..30 {
        tokio::time::advance(Duration::from_secs(20)).await;
        settle().await;
        if cache.cached(&local).is_none() {
            drop(cache.lookup(Some(&mut local)));
        }
    }
    assert_eq!(source.fetches(), 1);
    // Idle longer than the session length: the next request gets a new one before sending.
    tokio::time::advance(Duration::from_secs(100)).await;
    settle().await;
    assert!(cache.cached(&local).is_none());
    assert_eq!(token(&cache.get().await), "token-2");
    assert_eq!(
        source.previous_tokens().last(),
        Some(&Some("token-1".to_owned()))
    );
}

#[tokio::test(start_paused = true)]
async fn keep_alive_refreshes_without_requests() {
    let source = TestSource::expiring(MINUTE);
    let cache = CredentialCache::new(
        SharedTokenSource::from(source.clone()),
        RefreshPolicy::default().keep_alive(true),
    );
    assert_eq!(token(&cache.get().await), "token-1");
    for _ in 0..5 * 60 {
        tokio::time::advance(Duration::from_secs(1)).await;
        settle().await;
    }
    assert!(
        source.fetches() >= 6,
        "{} fetches in five idle minutes",
        source.fetches()
    );
    let (credential, _) = cache.get().await.unwrap_or_else(|_| panic!("kept alive"));
    assert!(credential.expiry().is_some_and(|at| at > Instant::now()));
}

#[tokio::test(start_paused = true)]
async fn no_runtime_is_a_typed_error_not_a_panic() {
    let source = TestSource::expiring(HOUR);
    let cache = cache(&source);
    let outcome = std::thread::spawn(move || match cache.lookup(None) {
        Lookup::Failed(err) => matches!(err.kind(), ErrorKind::Config(_)),
        _ => false,
    })
    .join();
    assert!(matches!(outcome, Ok(true)));
}

#[tokio::test(start_paused = true)]
async fn keep_alive_retries_a_failed_refresh_while_idle() {
    let source = TestSource::expiring(MINUTE);
    let cache = CredentialCache::new(
        SharedTokenSource::from(source.clone()),
        RefreshPolicy::default().keep_alive(true),
    );
    assert_eq!(token(&cache.get().await), "token-1");
    source.fail_next([transient()]);
    // Idle: the refresh at ~45 s fails, and is tried again when its backoff (≤ 1 s) ends, not
    // at the next deadline (54 s), which would leave one try before the token expires.
    for _ in 0..50 {
        tokio::time::advance(Duration::from_secs(1)).await;
        settle().await;
    }
    assert_eq!(source.fetches(), 3, "first fetch, failed refresh, retry");
    assert_eq!(token(&cache.get().await), "token-3");
}

#[tokio::test(start_paused = true)]
async fn huge_durations_mean_never_not_a_panic() {
    let source = TestSource::sliding(Duration::MAX);
    let cache = CredentialCache::new(
        SharedTokenSource::from(source.clone()),
        RefreshPolicy::default().backoff(Duration::MAX, Duration::MAX),
    );
    assert_eq!(token(&cache.get().await), "token-1");
    tokio::time::advance(HOUR).await;
    settle().await;
    assert_eq!(token(&cache.get().await), "token-1");
    let failing = TestSource::expiring(HOUR);
    failing.fail_next([transient()]);
    let cache = CredentialCache::new(
        SharedTokenSource::from(failing),
        RefreshPolicy::default().backoff(Duration::MAX, Duration::MAX),
    );
    assert!(cache.get().await.is_err());
    assert!(
        cache.get().await.is_err(),
        "backing off, for a very long time"
    );
}

#[tokio::test]
async fn a_deadline_beyond_the_coarse_clocks_range_is_not_brought_forward() {
    let far = Instant::now() + Duration::from_secs(u64::from(u32::MAX) + 60);
    let deadlines = Deadlines {
        refresh: Some(far),
        ..Deadlines::default()
    };
    let checked_again = coarse_deadline(&deadlines).map(|at| at.duration_since(coarse_now()));
    assert!(
        checked_again.is_some_and(|left| left.as_secs() >= 99 * 365 * 24 * 3600),
        "{checked_again:?}"
    );
}

/// A fetch cancelled half-way by its runtime shutting down is not a failure of the token
/// endpoint: the next caller, on another runtime, must start afresh, not get the cancellation
/// (and a backoff) back.
#[test]
fn fetch_cancelled_mid_flight_by_runtime_shutdown_does_not_back_off() -> Result<(), Error> {
    let source = TestSource::expiring(HOUR);
    source.delay(Duration::from_secs(5));
    let cache = cache(&source);
    let first = paused_runtime()?;
    first.block_on(async {
        assert!(matches!(cache.lookup(None), Lookup::Wait(_)));
        settle().await; // the fetch task has started and sleeps inside the source
    });
    assert_eq!(source.fetches(), 1);
    drop(first); // e.g. the end of a #[tokio::test] sharing a static client
    source.delay(Duration::ZERO);
    let second = runtime(true)?;
    let fetched = second.block_on(cache.get());
    assert_eq!(
        token(&fetched),
        "token-2",
        "the next caller got the cancellation back"
    );
    Ok(())
}

/// A waiter on another runtime whose fetch is cancelled by the shutdown of the runtime that ran
/// it (a `#[tokio::test]` ending while another, sharing a static client, waits) looks again and
/// fetches on its own runtime, instead of failing.
#[test]
fn waiter_on_another_runtime_fetches_again_when_the_fetch_is_cancelled() -> Result<(), Error> {
    let source = TestSource::expiring(HOUR);
    source.delay(Duration::from_secs(5));
    let cache = cache(&source);
    let first = paused_runtime()?;
    let mut waiting = Box::pin(cache.get());
    first.block_on(async {
        assert!(futures_util::FutureExt::now_or_never(&mut waiting).is_none());
        settle().await; // the fetch task has started and sleeps inside the source
    });
    drop(first);
    source.delay(Duration::ZERO);
    let fetched = runtime(true)?.block_on(waiting);
    assert_eq!(
        token(&fetched),
        "token-2",
        "the waiter got the cancellation"
    );
    assert_eq!(source.fetches(), 2);
    Ok(())
}

/// A source that panics fails like any other: the next try waits out the backoff.
#[tokio::test(start_paused = true)]
async fn a_panicking_source_is_a_failure_that_backs_off() {
    #[derive(Debug, Clone, Default)]
    struct Panicking(Arc<std::sync::atomic::AtomicU32>);
    impl crate::source::TokenSource for Panicking {
        async fn fetch(&self, _: Option<&Credential>) -> Result<Credential, Error> {
            self.0.fetch_add(1, Ordering::SeqCst);
            panic!("a buggy source")
        }
    }
    let source = Panicking::default();
    let cache = CredentialCache::new(
        SharedTokenSource::from(source.clone()),
        RefreshPolicy::default(),
    );
    for _ in 0..3 {
        assert!(cache.get().await.is_err());
    }
    assert_eq!(
        source.0.load(Ordering::SeqCst),
        1,
        "backing off after the panic"
    );
}

/// The watcher of a sliding (IBSSO) credential extends its deadlines with the credential it
/// read *before* taking the lock. A `401` invalidating it (or `revoke`) in between is undone:
/// the refused session is published again and requests are sent with it.
#[test]
fn sliding_watcher_does_not_resurrect_an_invalidated_credential() -> Result<(), Error> {
    let source = TestSource::sliding(Duration::from_secs(80)); // sampled every 10 s
    let cache = cache(&source);
    let (published_tx, published_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let driver = std::thread::spawn({
        let cache = cache.clone();
        move || -> Result<(), Error> {
            let rt = paused_runtime()?;
            rt.block_on(async {
                let (_, id) = cache.get().await?;
                settle().await; // the watcher sleeps until its first sample
                let _ = published_tx.send(id);
                let _ = go_rx.recv();
                // The sample is due: the watcher loads the slot, then blocks on the state lock.
                tokio::time::advance(Duration::from_secs(10)).await;
                settle().await;
                Ok(())
            })
        }
    });
    let id = published_rx
        .recv()
        .map_err(|e| Error::new(ErrorKind::Transport).with_source(e))?;
    cache.shared.used.store(true, Ordering::SeqCst); // a request used it since
    let guard = cache.lock();
    // A 401 for the session arrives: its invalidation queues on the state lock first...
    let refused = std::thread::spawn({
        let cache = cache.clone();
        move || cache.invalidate(id) == Refusal::Forgotten
    });
    std::thread::sleep(Duration::from_millis(50));
    // ...then the watcher samples: it loads the slot (and clears `used`) before locking.
    let _ = go_tx.send(());
    while cache.shared.used.load(Ordering::SeqCst) {
        std::thread::yield_now();
    }
    std::thread::sleep(Duration::from_millis(50));
    drop(guard); // the first waiter (the invalidation) goes first
    assert!(
        refused.join().unwrap_or(false),
        "the server refused the session (401)"
    );
    driver
        .join()
        .map_err(|_| Error::new(ErrorKind::Transport))??;
    assert!(
        cache.shared.slot.load().credential.is_none(),
        "the refused credential was published again"
    );
    Ok(())
}

/// A watcher outlives its credential and its cache: it sleeps until the credential's next
/// deadline (45 min here, up to 18 h for a 24 h token, a century for a session without idle
/// limit) before noticing. Every replaced credential (each `401`) and every dropped layer
/// leaves a task and a timer behind for that long.
#[tokio::test(start_paused = true)]
async fn watchers_end_with_their_credential_and_their_cache() {
    let alive = || {
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
    };
    let source = TestSource::expiring(HOUR);
    let cache = cache(&source);
    for _ in 0..10 {
        let (_, id) = cache.get().await.unwrap_or_else(|_| panic!("fetch"));
        // Every other 401 refuses a credential that answered a refusal: it backs off first.
        if cache.invalidate(id) == Refusal::BackedOff {
            assert_eq!(cache.invalidate(id), Refusal::Forgotten, "a 401 again");
            tokio::time::sleep(Duration::from_secs(120)).await;
        }
    }
    let _ = cache.get().await;
    settle().await;
    assert_eq!(alive(), 1, "one watcher for the one credential left");
    drop(cache);
    settle().await;
    assert_eq!(alive(), 0, "the cache is gone");
}

#[tokio::test(start_paused = true)]
async fn a_refresh_whose_credential_is_revoked_as_it_arrives_fetches_again_after() {
    let source = TestSource::expiring(HOUR).ending_previous();
    let cache = cache(&source);
    assert_eq!(token(&cache.get().await), "token-1");
    source.delay(Duration::from_secs(1));
    let refresh = tokio::spawn({
        let cache = cache.clone();
        async move { cache.refresh().await }
    });
    settle().await;
    let revoked = cache.revoke().await;
    assert!(revoked.is_ok(), "{revoked:?}");
    let refreshed = refresh
        .await
        .unwrap_or_else(|e| Err(Error::new(ErrorKind::Transport).with_source(e)));
    // `token-2` was revoked as it arrived (never handed on as `previous`): the refresh
    // fetched a fresh one after the revocation.
    assert_eq!(token(&refreshed), "token-3");
    let previous = source.previous_tokens();
    assert_eq!(previous, [None, Some("token-1".to_owned()), None]);
}
