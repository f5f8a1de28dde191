//! The signals the xtask reacts to (SIGINT, SIGTERM): the handlers only record the last one and
//! how many arrived; the execution layer (exec/) reads the record to stop what runs, start
//! nothing new and hand the signal on to a container.

use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

/// What the signal handlers record: the last signal and how many arrived.
#[derive(Default)]
struct Signals {
    last: AtomicI32,
    count: AtomicUsize,
}

static SIGNALS: OnceLock<Arc<Signals>> = OnceLock::new();

/// The signal record, registered on first use (the handlers only touch two atomics).
fn signals() -> &'static Arc<Signals> {
    SIGNALS.get_or_init(|| {
        let rec = Arc::new(Signals::default());
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            let r = Arc::clone(&rec);
            // SAFETY: the handler only stores to and increments atomics (async-signal-safe).
            let _ = unsafe {
                signal_hook::low_level::register(sig, move || {
                    r.last.store(sig, Ordering::SeqCst);
                    r.count.fetch_add(1, Ordering::SeqCst);
                })
            };
        }
        rec
    })
}

/// Register the SIGINT/SIGTERM handlers (call before any child starts).
pub fn install_signal_flag() {
    let _ = signals();
}

/// The user interrupted (SIGINT or SIGTERM arrived at least once).
pub fn interrupted() -> bool {
    signal_count() > 0
}

pub fn signal_count() -> usize {
    signals().count.load(Ordering::SeqCst)
}

pub fn last_signal() -> i32 {
    signals().last.load(Ordering::SeqCst)
}
