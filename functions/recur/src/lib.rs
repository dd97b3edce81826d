//! recur: receives `dev.todo.recurring-task.due`, creates the task instance for that
//! occurrence once, and moves the recurring task to its next occurrence.
//!
//! - [`handler`] — the logic (is this occurrence real and still relevant? create the instance
//!   and its reminders, advance or deactivate the recurring task, in one transaction).
//! - [`preview`] — `recur occurrences`, the rule preview people use before saving a rule.

pub mod handler;
pub mod preview;

pub use handler::Recur;
