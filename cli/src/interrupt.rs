//! Ctrl-C and SIGTERM. What ferry leaves on disk is always whole (temp
//! names renamed into place, packs written before the index that lists
//! them), so an interrupt only has to release the store locks this
//! process holds, run the cleanups commands registered (a mount
//! unmounts), say so, and end with 130 as shells expect. A command that
//! stops cleanly by itself (`watch`) asks for the first interrupt instead
//! ([`stop_with`]); a second one ends the process as above.

use std::sync::Mutex;

type Cleanup = Box<dyn Fn() + Send>;

static CLEANUPS: Mutex<Vec<Cleanup>> = Mutex::new(Vec::new());
static STOP: Mutex<Option<Cleanup>> = Mutex::new(None);

/// Installs the handler (once, at start).
pub fn install() {
    let _ = ctrlc::set_handler(|| {
        let stop = STOP.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(stop) = stop {
            stop();
            return;
        }
        for f in CLEANUPS.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            f();
        }
        ferry_store::lock::release_held_locks();
        eprintln!("\nferry: interrupted; nothing half-written remains, run the same command again to resume");
        std::process::exit(130);
    });
}

/// Runs `f` on an interrupt, before the process ends.
#[allow(dead_code)]
pub fn on_interrupt(f: impl Fn() + Send + 'static) {
    CLEANUPS.lock().unwrap_or_else(|e| e.into_inner()).push(Box::new(f));
}

/// The next interrupt calls `f` (which makes the command stop and exit 0)
/// instead of ending the process; an interrupt after it ends the process.
pub fn stop_with(f: impl Fn() + Send + 'static) {
    *STOP.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(f));
}
