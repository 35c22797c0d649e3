//! Work a command leaves running while it goes on: dropping a database it
//! no longer needs, evicting this clone's oldest templates (docs/engine.md).
//! The server does that work; the command meanwhile generates code, runs
//! tests or publishes. Every task is joined before the process exits
//! ([`crate::cli::finish`] calls [`wait`]), so a finished command leaves
//! nothing behind; a killed one leaves what a synchronous drop would have
//! left (temporary databases are dropped by a later run once their process
//! is gone: docs/safety.md).

use std::sync::Mutex;
use std::thread::JoinHandle;

static PENDING: Mutex<Vec<JoinHandle<()>>> = Mutex::new(Vec::new());

/// Runs `task` on a thread of its own; [`wait`] joins it.
pub fn spawn(task: impl FnOnce() + Send + 'static) {
    let handle = std::thread::spawn(task);
    PENDING
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(handle);
}

/// Joins every task spawned so far (a task that panicked is only joined).
pub fn wait() {
    let handles = std::mem::take(&mut *PENDING.lock().unwrap_or_else(|p| p.into_inner()));
    for h in handles {
        let _ = h.join();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn wait_returns_after_every_task_finished() {
        let done = Arc::new(AtomicUsize::new(0));
        for _ in 0..3 {
            let done = done.clone();
            super::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(30));
                done.fetch_add(1, Ordering::SeqCst);
            });
        }
        super::spawn(|| panic!("a failing task is only joined"));
        super::wait();
        assert_eq!(done.load(Ordering::SeqCst), 3);
    }
}
