//! The crate's one way to start a tokio timer: where tokio has none to give, a typed error
//! instead of tokio's panic.

use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::Error;

/// The timer `make` starts, or why there is none. Tokio panics when a timer is made outside a
/// runtime (found out here first, without a panic) or on a runtime built without its time
/// driver, which it offers no way to ask about: that panic is caught, and only tokio's hook
/// prints its message (a build with `panic = "abort"` ends there, as tokio makes it). `needs`
/// is the error's reason outside a runtime.
pub(crate) fn start<T>(needs: &'static str, make: impl FnOnce() -> T) -> Result<T, Error> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(Error::no_runtime(needs));
    }
    catch_unwind(AssertUnwindSafe(make)).map_err(|_| Error::no_timers())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::ErrorKind;
    use crate::error::ConfigError;

    fn says_runtime(error: &Error) -> bool {
        matches!(
            error.kind(),
            ErrorKind::Config(ConfigError::Invalid {
                what: "runtime",
                ..
            })
        )
    }

    #[test]
    fn outside_a_runtime_there_is_no_timer() {
        let started = start("a test", || tokio::time::sleep(Duration::from_secs(1)));
        assert!(started.is_err_and(|error| says_runtime(&error) && !error.is_no_timers()));
    }

    #[test]
    fn a_runtime_without_its_time_driver_has_no_timer() -> Result<(), std::io::Error> {
        let runtime = tokio::runtime::Builder::new_current_thread().build()?;
        let _entered = runtime.enter();
        let started = start("a test", || tokio::time::sleep(Duration::from_secs(1)));
        assert!(started.is_err_and(|error| error.is_no_timers()));
        Ok(())
    }

    #[tokio::test]
    async fn a_runtime_with_timers_starts_one() {
        assert!(start("a test", || tokio::time::sleep(Duration::from_secs(1))).is_ok());
    }
}
