//! Instructions per request under callgrind: stable on a noisy, shared machine where wall-clock
//! figures wander.
//!
//! ```text
//! CARGO_TARGET_DIR=/work/target-bench cargo bench --bench callgrind [-- VARIANT...]
//! ```
//!
//! Runs itself under `valgrind --tool=callgrind` twice per variant, sending 1,000 and then
//! 101,000 requests on one thread (the `per_request` loop of `header_injection`), and reports
//! the difference / 100,000: the instructions of one request, with set-up and teardown
//! cancelled out. Without valgrind on `PATH` it says so and does nothing.

mod support;

use std::process::Command;

use support::{Layered, ServiceFn, Variant, serial, with_service};

const CHILD: &str = "INFOBIP_AUTH_CALLGRIND_CHILD";
const FEW: u64 = 1_000;
const MANY: u64 = 101_000;

struct Run(u64);

impl ServiceFn<()> for Run {
    fn call<S: Layered>(self, mut service: S) {
        serial(&mut service, self.0);
    }
}

/// Inside valgrind: send `count` requests through `variant`.
fn child(variant: Variant, count: u64) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    with_service(variant, &runtime, Run(count));
}

/// Instructions collected by callgrind for `count` requests through `variant`.
fn instructions(variant: Variant, count: u64) -> Result<u64, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out_file = std::env::temp_dir().join(format!(
        "infobip-auth-callgrind.{}.{}.{count}",
        std::process::id(),
        variant.name()
    ));
    let output = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out_file.display()))
        .arg(&exe)
        .arg(variant.name())
        .arg(count.to_string())
        .env(CHILD, "1")
        .output()
        .map_err(|e| format!("valgrind: {e}"))?;
    let _ = std::fs::remove_file(&out_file);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(format!("valgrind failed: {stderr}"));
    }
    stderr
        .lines()
        .find_map(|line| {
            let (_, collected) = line.split_once("Collected :")?;
            collected.trim().parse().ok()
        })
        .ok_or_else(|| format!("no \"Collected\" line in callgrind's output: {stderr}"))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let positional: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if std::env::var_os(CHILD).is_some() {
        let (Some(variant), Some(count)) = (
            positional.first().and_then(|n| Variant::from_name(n)),
            positional.get(1).and_then(|n| n.parse().ok()),
        ) else {
            eprintln!("usage: callgrind VARIANT COUNT");
            std::process::exit(2);
        };
        child(variant, count);
        return;
    }
    // `cargo test --benches` and `--list` only check that the target runs.
    if args.iter().any(|a| a == "--test" || a == "--list") {
        return;
    }
    if Command::new("valgrind").arg("--version").output().is_err() {
        println!("callgrind: valgrind is not on PATH; nothing measured");
        return;
    }
    let variants: Vec<Variant> = Variant::ALL
        .into_iter()
        .filter(|v| positional.is_empty() || positional.iter().any(|p| v.name().contains(p)))
        .collect();
    println!(
        "callgrind: instructions per request = (Ir for {MANY} requests - Ir for {FEW}) / {}",
        MANY - FEW
    );
    let mut tower = None;
    for variant in variants {
        let per_request = instructions(variant, FEW).and_then(|few| {
            let many = instructions(variant, MANY)?;
            Ok(many.saturating_sub(few) as f64 / (MANY - FEW) as f64)
        });
        match per_request {
            Ok(ir) => {
                if variant == Variant::TowerHttp {
                    tower = Some(ir);
                }
                let ratio = tower.map_or(String::new(), |t| format!("   ratio {:.2}", ir / t));
                println!("  {:<32} {ir:>8.1} instructions{ratio}", variant.name());
            }
            Err(error) => println!("  {:<32} failed: {error}", variant.name()),
        }
    }
}
