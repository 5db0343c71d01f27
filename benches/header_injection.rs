//! What the layer costs per request, against tower-http's static `AddAuthorization` measured in
//! the same run (STYLE B.12, DESIGN invariant 1, issues 2 and 7).
//!
//! ```text
//! CARGO_TARGET_DIR=/work/target-bench cargo bench --bench header_injection
//! ```
//!
//! Groups:
//! - `per_request`: one thread; the inner service alone, tower-http's `AddAuthorization` (and
//!   `SetRequestHeader` with `App <key>`), and `InfobipAuth` with an API key and with a renewing
//!   source whose credential is cached — without replay, and with the default replay policy,
//!   which copies a `Full<Bytes>` request before sending it.
//! - `contention`: total throughput with 1, 2 and 4 OS threads, each with its own clone of the
//!   service (reported as wall time per request over all threads: lower is more throughput).
//! - `tokio_current_thread`: the same calls driven with `ready().await?.call(req).await` on a
//!   current-thread runtime, as applications drive them.
//!
//! Then, outside criterion, a paired phase measures the ratios the goals are about directly:
//! for each variant, many rounds of one short batch through tower-http and one through the
//! variant, back to back (the order alternating), and the median of the per-round ratios. Load
//! from other processes that comes and goes hits both batches of a round alike, so these ratios
//! hold still where separate medians taken seconds apart wander. Set
//! `HEADER_INJECTION_PAIRED=0` to skip it.
//!
//! At the end a summary prints the medians of this run and the ratios InfobipAuth / tower-http.
//! A filter runs part of the criterion groups (the summary shows what ran).

mod support;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;
use std::time::Instant;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, Throughput};
use support::{
    Body, Layered, PLACEMENTS, Run, ServiceFn, Variant, at_placement, request, round_trip, serial,
    serial_async, threaded, with_service,
};
use tokio::runtime::Runtime;

/// Samples per benchmark; the summary takes the median of the last this many samples (the
/// measurement; earlier calls are criterion's warm-up).
const SAMPLES: usize = 30;
const THREADS: [usize; 3] = [1, 2, 4];
const CONTENDED: [Variant; 5] = [
    Variant::Bare,
    Variant::TowerHttp,
    Variant::ApiKey,
    Variant::Cached,
    Variant::CachedReplay,
];
const ASYNC: [Variant; 4] = [
    Variant::Bare,
    Variant::TowerHttp,
    Variant::Cached,
    Variant::CachedReplay,
];

/// Nanoseconds per request of every sample, by benchmark id.
static SAMPLED: Mutex<BTreeMap<String, Vec<f64>>> = Mutex::new(BTreeMap::new());

fn record(id: &str, iters: u64, elapsed: Duration) -> Duration {
    let per_request = elapsed.as_nanos() as f64 / iters.max(1) as f64;
    SAMPLED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(id.to_owned())
        .or_default()
        .push(per_request);
    elapsed
}

/// Threads running at once (CPU time / wall time) of every threaded sample, by benchmark id.
static CONCURRENCY: Mutex<BTreeMap<String, Vec<f64>>> = Mutex::new(BTreeMap::new());

fn record_concurrency(id: &str, concurrency: f64) {
    CONCURRENCY
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(id.to_owned())
        .or_default()
        .push(concurrency);
}

fn concurrency_of(id: &str) -> Option<f64> {
    let all = CONCURRENCY.lock().unwrap_or_else(|p| p.into_inner());
    let samples = all.get(id)?;
    Some(quantile(
        &samples[samples.len().saturating_sub(SAMPLES)..],
        0.5,
    ))
}

/// The cores this process may use.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

fn configure(group: &mut BenchmarkGroup<'_, WallTime>) {
    group
        .sample_size(SAMPLES)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1200))
        .throughput(Throughput::Elements(1));
}

struct Serial<'g, 'c> {
    group: &'g mut BenchmarkGroup<'c, WallTime>,
    id: String,
    name: &'static str,
}

impl ServiceFn<()> for Serial<'_, '_> {
    fn call<S: Layered>(self, mut service: S) {
        let id = self.id;
        self.group.bench_function(self.name, |b| {
            b.iter_custom(|iters| record(&id, iters, serial(&mut service, iters)));
        });
    }
}

fn per_request(c: &mut Criterion, runtime: &Runtime) {
    let mut group = c.benchmark_group("per_request");
    configure(&mut group);
    for variant in Variant::ALL {
        let id = format!("per_request/{}", variant.name());
        let bench = Serial {
            group: &mut group,
            id,
            name: variant.name(),
        };
        with_service(variant, runtime, bench);
    }
    group.finish();
}

struct Threaded<'g, 'c> {
    group: &'g mut BenchmarkGroup<'c, WallTime>,
    name: &'static str,
}

impl ServiceFn<()> for Threaded<'_, '_> {
    fn call<S: Layered>(self, service: S) {
        for threads in THREADS {
            let id = format!("contention/{}/{threads}", self.name);
            self.group
                .bench_with_input(BenchmarkId::new(self.name, threads), &threads, |b, &n| {
                    b.iter_custom(|iters| {
                        let run = threaded(&service, n, iters);
                        if let Some(concurrency) = run.concurrency() {
                            record_concurrency(&id, concurrency);
                        }
                        record(&id, iters, run.wall)
                    });
                });
        }
    }
}

fn contention(c: &mut Criterion, runtime: &Runtime) {
    let mut group = c.benchmark_group("contention");
    configure(&mut group);
    for variant in CONTENDED {
        let bench = Threaded {
            group: &mut group,
            name: variant.name(),
        };
        with_service(variant, runtime, bench);
    }
    group.finish();
}

struct Async<'g, 'c, 'r> {
    group: &'g mut BenchmarkGroup<'c, WallTime>,
    runtime: &'r Runtime,
    name: &'static str,
}

impl ServiceFn<()> for Async<'_, '_, '_> {
    fn call<S: Layered>(self, service: S) {
        let id = format!("tokio_current_thread/{}", self.name);
        self.group.bench_function(self.name, |b| {
            b.to_async(self.runtime).iter_custom(|iters| {
                let (service, id) = (service.clone(), &id);
                async move { record(id, iters, serial_async(service, iters).await) }
            });
        });
    }
}

fn tokio_current_thread(c: &mut Criterion, runtime: &Runtime) {
    let mut group = c.benchmark_group("tokio_current_thread");
    configure(&mut group);
    for variant in ASYNC {
        let bench = Async {
            group: &mut group,
            runtime,
            name: variant.name(),
        };
        with_service(variant, runtime, bench);
    }
    group.finish();
}

/// Rounds of the paired phase, and requests per batch: about 2 ms on one thread; with threads,
/// 100,000 in all (several ms), so that starting the threads is a small part of a batch.
const ROUNDS: usize = 101;
const BATCH: u64 = 20_000;
const THREADED_BATCH: u64 = 100_000;
const PAIRED: [Variant; 5] = [
    Variant::Bare,
    Variant::TowerHttpSetHeader,
    Variant::ApiKey,
    Variant::Cached,
    Variant::CachedReplay,
];
const PAIRED_THREADED: [Variant; 3] = [Variant::ApiKey, Variant::Cached, Variant::CachedReplay];

/// What a paired comparison found. Ratios are variant / tower-http per round, in time (lower is
/// better for the variant; the throughput ratio is the inverse).
struct Paired {
    /// Medians over the rounds of wall ns per request.
    tower_ns: f64,
    variant_ns: f64,
    /// Wall-time ratios of every round.
    ratios: Vec<f64>,
    /// Threads only: the wall-time ratios of the rounds in which both sides ran with their
    /// threads truly in parallel (see [`FREE`]); the machine is shared, and a round in which
    /// another process held a core says nothing about contention.
    free_ratios: Vec<f64>,
    /// Threads only: CPU-time ratios of every round (CPU time per request, summed over threads).
    cpu_ratios: Vec<f64>,
}

/// A threaded batch ran "free" when its threads ran at once at least this share of the time
/// they could (`min(threads, cores)`).
const FREE: f64 = 0.85;

fn quantile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let at = ((sorted.len().max(1) - 1) as f64 * q).round() as usize;
    sorted.get(at).copied().unwrap_or(f64::NAN)
}

/// Median [p25, p75].
fn spread(values: &[f64]) -> String {
    format!(
        "{:.3} [{:.3}, {:.3}]",
        quantile(values, 0.5),
        quantile(values, 0.25),
        quantile(values, 0.75)
    )
}

#[derive(Clone, Copy)]
enum Mode {
    Serial,
    Threads(usize),
}

/// Builds tower-http's service, then the variant's, then runs the rounds.
struct PairOuter<'r> {
    variant: Variant,
    runtime: &'r Runtime,
    mode: Mode,
}

impl ServiceFn<Paired> for PairOuter<'_> {
    fn call<T: Layered>(self, tower: T) -> Paired {
        with_service(
            self.variant,
            self.runtime,
            PairInner {
                tower,
                mode: self.mode,
            },
        )
    }
}

struct PairInner<T> {
    tower: T,
    mode: Mode,
}

impl<T: Layered> ServiceFn<Paired> for PairInner<T> {
    fn call<S: Layered>(self, variant: S) -> Paired {
        let mut tower = self.tower;
        let mut variant = variant;
        let mut found = Paired {
            tower_ns: 0.0,
            variant_ns: 0.0,
            ratios: vec![],
            free_ratios: vec![],
            cpu_ratios: vec![],
        };
        let (mut tower_ns, mut variant_ns) = (vec![], vec![]);
        let mut tower_request = Some(round_trip(&mut tower, request()));
        let mut variant_request = Some(round_trip(&mut variant, request()));
        let batch = match self.mode {
            Mode::Serial => BATCH,
            Mode::Threads(_) => THREADED_BATCH,
        };
        let per = |d: Duration| d.as_nanos() as f64 / batch as f64;
        for round in 0..ROUNDS {
            // Both sides of a round at the same stack placement (`threaded` takes the next one).
            let placement = round % PLACEMENTS;
            let mut run_tower = || match self.mode {
                Mode::Serial => timed(&mut tower, &mut tower_request, placement),
                Mode::Threads(n) => threaded(&tower, n, THREADED_BATCH),
            };
            let mut run_variant = || match self.mode {
                Mode::Serial => timed(&mut variant, &mut variant_request, placement),
                Mode::Threads(n) => threaded(&variant, n, THREADED_BATCH),
            };
            // Alternate which side goes first, so a trend in the machine's load favours neither.
            let (t, v) = if round % 2 == 0 {
                let t = run_tower();
                (t, run_variant())
            } else {
                let v = run_variant();
                (run_tower(), v)
            };
            tower_ns.push(per(t.wall));
            variant_ns.push(per(v.wall));
            let ratio = per(v.wall) / per(t.wall);
            found.ratios.push(ratio);
            if let Mode::Threads(n) = self.mode {
                let possible = n.min(cores()) as f64;
                let free = |run: &Run| run.concurrency().is_some_and(|c| c >= FREE * possible);
                if free(&t) && free(&v) {
                    found.free_ratios.push(ratio);
                }
                if let (Some(tc), Some(vc)) = (t.cpu, v.cpu) {
                    found.cpu_ratios.push(vc.as_secs_f64() / tc.as_secs_f64());
                }
            }
        }
        found.tower_ns = quantile(&tower_ns, 0.5);
        found.variant_ns = quantile(&variant_ns, 0.5);
        found
    }
}

/// One batch on this thread at stack `placement`, reusing `slot`'s request.
fn timed<S: Layered>(
    service: &mut S,
    slot: &mut Option<http::Request<Body>>,
    placement: usize,
) -> Run {
    at_placement(placement, || {
        let mut request = slot.take().unwrap_or_else(request);
        let start = Instant::now();
        for _ in 0..BATCH {
            request = round_trip(service, std::hint::black_box(request));
        }
        let wall = start.elapsed();
        *slot = Some(request);
        Run { wall, cpu: None }
    })
}

/// The paired phase; `None` when skipped.
fn paired(runtime: &Runtime) -> Option<Vec<(Mode, Variant, Paired)>> {
    let args: Vec<String> = std::env::args().collect();
    let skip = std::env::var("HEADER_INJECTION_PAIRED").is_ok_and(|v| v == "0")
        || args
            .iter()
            .any(|a| a == "--test" || a == "--list" || a == "--profile-time");
    if skip {
        return None;
    }
    eprintln!("paired phase: {ROUNDS} rounds per variant ...");
    let mut results = Vec::new();
    for variant in PAIRED {
        let outer = PairOuter {
            variant,
            runtime,
            mode: Mode::Serial,
        };
        results.push((
            Mode::Serial,
            variant,
            with_service(Variant::TowerHttp, runtime, outer),
        ));
    }
    for threads in THREADS {
        for variant in PAIRED_THREADED {
            let outer = PairOuter {
                variant,
                runtime,
                mode: Mode::Threads(threads),
            };
            let found = with_service(Variant::TowerHttp, runtime, outer);
            results.push((Mode::Threads(threads), variant, found));
        }
    }
    Some(results)
}

fn paired_summary(results: &[(Mode, Variant, Paired)], line: &mut dyn FnMut(String)) {
    line(format!(
        "paired: {ROUNDS} rounds of {BATCH} requests per side ({THREADED_BATCH} with threads), \
         tower-http and the variant back to back; time ratio = variant / tower-http, median [p25, p75]; throughput ratio = 1 / time \
         ratio. Threads: 'free' = rounds in which both sides ran their threads in parallel \
         (>= {FREE} of min(threads, {} cores)); cpu = ratio of CPU time per request.",
        cores()
    ));
    for (mode, variant, p) in results {
        let median = quantile(&p.ratios, 0.5);
        let head = format!(
            "{:<32} {:>8.2} ns vs {:>8.2} ns   time ratio {}",
            variant.name(),
            p.variant_ns,
            p.tower_ns,
            spread(&p.ratios),
        );
        match mode {
            Mode::Serial => line(format!(
                "  1 thread  {head}   throughput ratio {:.3}",
                1.0 / median
            )),
            Mode::Threads(n) => {
                let free = if p.free_ratios.is_empty() {
                    "no free round".to_owned()
                } else {
                    format!(
                        "{} free rounds: time ratio {}, throughput ratio {:.3}",
                        p.free_ratios.len(),
                        spread(&p.free_ratios),
                        1.0 / quantile(&p.free_ratios, 0.5)
                    )
                };
                line(format!(
                    "  {n} thread(s) {head}   cpu {}   {free}",
                    spread(&p.cpu_ratios)
                ));
            }
        }
    }
    for (mode, variant, p) in results {
        match (mode, variant) {
            (Mode::Serial, Variant::Cached) => {
                let median = quantile(&p.ratios, 0.5);
                line(format!(
                    "  goal (paired) cached, no replay, 1 thread <= 1.05x tower-http: {median:.3}x -> {}",
                    verdict(median <= 1.05)
                ));
            }
            (Mode::Threads(n), Variant::ApiKey | Variant::Cached) if *n > 1 => {
                let outcome = if p.free_ratios.len() >= 10 {
                    let throughput = 1.0 / quantile(&p.free_ratios, 0.5);
                    format!(
                        "{throughput:.3}x over {} free rounds -> {}",
                        p.free_ratios.len(),
                        verdict(throughput >= 1.0)
                    )
                } else {
                    format!(
                        "undetermined: only {} of {ROUNDS} rounds had the cores free",
                        p.free_ratios.len()
                    )
                };
                line(format!(
                    "  goal (paired) {n} threads, {} throughput >= tower-http: {outcome}",
                    variant.name()
                ));
            }
            _ => {}
        }
    }
}

fn median_of(id: &str) -> Option<f64> {
    let sampled = SAMPLED.lock().unwrap_or_else(|p| p.into_inner());
    let all = sampled.get(id)?;
    // Criterion's warm-up calls come first; the measurement is the last SAMPLES calls.
    let mut samples = all[all.len().saturating_sub(SAMPLES)..].to_vec();
    if samples.len() < SAMPLES {
        return None; // a test run (`--test`) or a profile run: no measurement to summarize
    }
    samples.sort_by(f64::total_cmp);
    let mid = samples.len() / 2;
    Some(if samples.len() % 2 == 0 {
        (samples[mid - 1] + samples[mid]) / 2.0
    } else {
        samples[mid]
    })
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

fn summary(paired: Option<&[(Mode, Variant, Paired)]>) {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line(String::new());
    line("== header_injection summary: medians of this run ==".into());

    let single = |v: Variant| median_of(&format!("per_request/{}", v.name()));
    if let (Some(tower), Some(bare)) = (single(Variant::TowerHttp), single(Variant::Bare)) {
        line(
            "per_request, 1 thread (ns per request; ratio = variant / tower-http AddAuthorization; \
             added = (variant - bare) / (tower-http - bare)):"
                .into(),
        );
        for variant in Variant::ALL {
            if let Some(ns) = single(variant) {
                line(format!(
                    "  {:<32} {:>8.2} ns   ratio {:>5.2}   added {:>5.2}",
                    variant.name(),
                    ns,
                    ns / tower,
                    (ns - bare) / (tower - bare),
                ));
            }
        }
        if let Some(cached) = single(Variant::Cached) {
            line(format!(
                "  goal cached (no replay) <= 1.05x tower-http on one thread: {:.3}x -> {}",
                cached / tower,
                verdict(cached / tower <= 1.05)
            ));
        }
        if let Some(replay) = single(Variant::CachedReplay) {
            line(format!(
                "  cached with the default replay of a Full<Bytes> body: {:.3}x tower-http",
                replay / tower
            ));
        }
    }

    let contended = |v: Variant, n: usize| median_of(&format!("contention/{}/{n}", v.name()));
    if contended(Variant::TowerHttp, 1).is_some() {
        line(
            "contention (wall ns per request over all threads, lower = more throughput; \
             Mreq/s = total throughput; ratio = InfobipAuth throughput / tower-http throughput):"
                .into(),
        );
        for threads in THREADS {
            let Some(tower) = contended(Variant::TowerHttp, threads) else {
                continue;
            };
            for variant in CONTENDED {
                let Some(ns) = contended(variant, threads) else {
                    continue;
                };
                let scaling = contended(variant, 1).map_or(f64::NAN, |one| one / ns);
                let concurrency =
                    concurrency_of(&format!("contention/{}/{threads}", variant.name()))
                        .unwrap_or(f64::NAN);
                line(format!(
                    "  {threads} thread(s) {:<32} {:>8.2} ns  {:>7.1} Mreq/s  x{:>4.2} vs 1 thread   \
                     throughput ratio {:>5.2}   threads running at once {concurrency:.2}",
                    variant.name(),
                    ns,
                    1e3 / ns,
                    scaling,
                    tower / ns,
                ));
            }
        }
        if let Some(concurrency) = concurrency_of(&format!("contention/{}/2", Variant::Bare.name()))
            && concurrency < FREE * 2.0f64.min(cores() as f64)
        {
            line(format!(
                "  note: with 2 threads the bare service ran only {concurrency:.2} threads at once: \
                 other processes held the cores, so these multi-thread figures say little about \
                 contention; see the paired phase's free rounds"
            ));
        }
        for threads in [2, 4] {
            for variant in [Variant::ApiKey, Variant::Cached, Variant::CachedReplay] {
                if let (Some(tower), Some(ns)) = (
                    contended(Variant::TowerHttp, threads),
                    contended(variant, threads),
                ) {
                    let goal = if variant == Variant::CachedReplay {
                        "(no goal set)"
                    } else {
                        verdict(tower / ns >= 1.0)
                    };
                    line(format!(
                        "  goal {threads} threads, {} throughput >= tower-http: {:.2}x -> {goal}",
                        variant.name(),
                        tower / ns,
                    ));
                }
            }
        }
    }

    let driven = |v: Variant| median_of(&format!("tokio_current_thread/{}", v.name()));
    if let Some(tower) = driven(Variant::TowerHttp) {
        line("tokio_current_thread, ready().await?.call(req).await (ns per request; ratio / tower-http):".into());
        for variant in ASYNC {
            if let Some(ns) = driven(variant) {
                line(format!(
                    "  {:<32} {:>8.2} ns   ratio {:>5.2}",
                    variant.name(),
                    ns,
                    ns / tower
                ));
            }
        }
    }
    if let Some(results) = paired {
        paired_summary(results, &mut line);
    }
    print!("{out}");
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    // Short analysis and no plots: the run stays within a few minutes on two busy cores.
    let mut criterion = Criterion::default()
        .without_plots()
        .nresamples(20_000)
        .configure_from_args();
    per_request(&mut criterion, &runtime);
    contention(&mut criterion, &runtime);
    tokio_current_thread(&mut criterion, &runtime);
    criterion.final_summary();
    let paired = paired(&runtime);
    summary(paired.as_deref());
}
