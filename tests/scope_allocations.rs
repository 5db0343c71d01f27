//! Catalogue lookups allocate nothing, whatever form the path takes: as written, with a
//! trailing slash, with percent-encoded characters, or matching no operation.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use infobip_auth::Catalog;

/// Forwards to the system allocator and counts, on threads that asked for it, the calls that
/// hand out memory.
struct Counting;

thread_local! {
    // `const` thread-locals of `Cell`s need no allocation and no destructor, so the allocator
    // may touch them from inside an allocation.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn note_allocation() {
    let _ = COUNTING.try_with(|on| {
        if on.get() {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        }
    });
}

// SAFETY: every method forwards its arguments unchanged to `System`, which upholds the
// `GlobalAlloc` contract; the counting around it neither allocates nor touches the memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: the caller's guarantees for `layout` are passed on as they are.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: `ptr` came from this allocator, that is from `System`, with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, that is from `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f`, returning what it returned and how many allocations it made on this thread.
fn allocations_in<R>(f: impl FnOnce() -> R) -> (R, u64) {
    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|on| on.set(true));
    let result = f();
    COUNTING.with(|on| on.set(false));
    (result, ALLOCATIONS.with(Cell::get))
}

/// `template` with every parameter filled in.
fn filled(template: &str) -> String {
    template
        .split('/')
        .map(|segment| {
            if segment.starts_with('{') {
                "x1"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// `path` with the first character of its last segment percent-encoded.
fn encoded(path: &str) -> String {
    let at = path.rfind('/').map_or(0, |slash| slash + 1);
    match path[at..].chars().next() {
        Some(c) => format!("{}%{:02X}{}", &path[..at], u32::from(c), &path[at + 1..]),
        None => path.to_owned(),
    }
}

#[test]
fn every_operation_is_found_in_any_form_without_allocating() {
    let catalog = Catalog::infobip();
    let mut requests = Vec::new();
    for op in catalog.operations() {
        let path = filled(op.template);
        for form in [
            path.clone(),
            format!("{path}/"),
            encoded(&path),
            format!("{}/?q=%41", encoded(&path)),
        ] {
            requests.push((op.method.clone(), form, Some(op.template)));
        }
        requests.push((op.method.clone(), path.to_uppercase(), None));
    }
    // Longer than a lookup decodes on its stack: matched as written, found by nothing.
    requests.push((
        http::Method::GET,
        format!("/sms/1/logs/{}", "%41".repeat(2000)),
        None,
    ));

    let (found, allocations) = allocations_in(|| {
        requests
            .iter()
            .filter(|(method, path, template)| {
                catalog.lookup(method, path).map(|op| op.template) == *template
            })
            .count()
    });
    assert_eq!(allocations, 0);
    assert_eq!(found, requests.len());
}
