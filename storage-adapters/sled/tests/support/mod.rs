//! What the sled adapter's tests share.

use std::time::Duration;

/// Retries for up to two seconds: sled releases its directory lock from a background
/// thread shortly after the last handle drops, so a reopen (in this process or a child)
/// can briefly fail.
pub fn retry<T, E: std::fmt::Debug>(mut attempt: impl FnMut() -> Result<T, E>) -> T {
    for _ in 0..200 {
        if let Ok(value) = attempt() {
            return value;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    match attempt() {
        Ok(value) => value,
        Err(err) => panic!("still failing after two seconds: {err:?}"),
    }
}
