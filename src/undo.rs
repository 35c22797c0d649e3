//! Compensating actions: a command records how to take back each change it
//! makes, and on failure they run in reverse order, so a failed command
//! leaves nothing behind that blocks a retry.

use crate::error::Error;

type Action = Box<dyn FnOnce() -> Result<(), Error>>;

#[derive(Default)]
pub struct Undo {
    actions: Vec<(String, Action)>,
}

impl Undo {
    pub fn new() -> Undo {
        Undo::default()
    }

    /// Records how to take back a change that was just made.
    pub fn push(
        &mut self,
        what: impl Into<String>,
        action: impl FnOnce() -> Result<(), Error> + 'static,
    ) {
        self.actions.push((what.into(), Box::new(action)));
    }

    /// The change succeeded as a whole: nothing is to be undone.
    pub fn commit(mut self) {
        self.actions.clear();
    }

    /// Runs the actions in reverse; returns what could not be undone.
    pub fn run(mut self) -> Vec<String> {
        let mut failed = Vec::new();
        while let Some((what, action)) = self.actions.pop() {
            if let Err(e) = action() {
                failed.push(format!("{what}: {}", e.message));
            }
        }
        failed
    }

    /// On error, undoes everything and adds to the error what could not be
    /// undone.
    pub fn on_error<T>(self, result: Result<T, Error>) -> Result<T, Error> {
        match result {
            Ok(v) => {
                self.commit();
                Ok(v)
            }
            Err(mut e) => {
                let failed = self.run();
                if failed.is_empty() {
                    e.message.push_str(" (nothing was changed)");
                } else {
                    e.message
                        .push_str(&format!("; could not undo: {}", failed.join("; ")));
                }
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    #[test]
    fn runs_in_reverse_and_reports_failures() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let mut u = Undo::new();
        let l = log.clone();
        u.push("first", move || {
            l.borrow_mut().push(1);
            Ok(())
        });
        let l = log.clone();
        u.push("second", move || {
            l.borrow_mut().push(2);
            Err(Error::new("stuck"))
        });
        let err = u.on_error::<()>(Err(Error::new("boom"))).unwrap_err();
        assert_eq!(*log.borrow(), vec![2, 1]);
        assert_eq!(err.message, "boom; could not undo: second: stuck");
    }

    #[test]
    fn success_undoes_nothing() {
        let mut u = Undo::new();
        u.push("x", || panic!("must not run"));
        assert_eq!(u.on_error(Ok(3)).unwrap(), 3);
    }
}
