//! Why a task handler failed, in the words the master will read.

use std::fmt;

/// A task handler's failure: its message becomes the error response's message (kind
/// `HandlerFailed`).
///
/// Handlers return `Result<T, TaskFailure>`, so `Ok(value)` needs no type annotation and `?`
/// works on any error type: the error's message (and those of its sources, joined by ": ")
/// becomes the failure's. Make one from text with [`TaskFailure::new`].
///
/// ```
/// use distio_slave::TaskFailure;
///
/// fn parse(text: &str) -> Result<u64, TaskFailure> {
///     let n: u64 = text.parse()?; // any std error converts
///     if n == 0 {
///         return Err(TaskFailure::new("zero is not allowed"));
///     }
///     Ok(n)
/// }
/// assert_eq!(parse("7").unwrap(), 7);
/// assert_eq!(parse("x").unwrap_err().message(), "invalid digit found in string");
/// assert_eq!(parse("0").unwrap_err().to_string(), "zero is not allowed");
/// ```
///
/// It deliberately does not implement `std::error::Error` itself, which is what lets every
/// error type convert into it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskFailure {
    message: String,
}

impl TaskFailure {
    /// A failure with this message.
    pub fn new(message: impl Into<String>) -> Self {
        TaskFailure {
            message: message.into(),
        }
    }

    /// The message the master will read.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for TaskFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for TaskFailure {
    fn from(error: E) -> Self {
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        TaskFailure { message }
    }
}
