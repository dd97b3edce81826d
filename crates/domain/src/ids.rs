//! Database identifiers as distinct types, so a task id can never be passed where a user id
//! is expected. On the wire they are JSON integers; only positive 64-bit values are ids.

use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(i64);

        impl $name {
            /// Accepts only positive values: databases hand out ids from 1.
            pub fn new(value: i64) -> Option<Self> {
                (value > 0).then_some(Self(value))
            }
            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let value = i64::deserialize(d)?;
                Self::new(value).ok_or_else(|| {
                    serde::de::Error::custom(format!("must be a positive integer, got {value}"))
                })
            }
        }
    };
}

id_type!(
    /// `users.id`
    UserId
);
id_type!(
    /// `tasks.id`
    TaskId
);
id_type!(
    /// `reminders.id`
    ReminderId
);
id_type!(
    /// `recurring_tasks.id`
    RecurringTaskId
);
id_type!(
    /// `deliveries.id`: one delivery of a reminder occurrence on one channel (and endpoint).
    DeliveryId
);
id_type!(
    /// `channel_endpoints.id`: a webhook or Web Push subscription a user registered.
    EndpointId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_must_be_positive() {
        assert!(UserId::new(0).is_none());
        assert!(UserId::new(-3).is_none());
        assert_eq!(UserId::new(7).unwrap().get(), 7);
        assert!(serde_json::from_str::<TaskId>("-1").is_err());
        assert!(serde_json::from_str::<TaskId>("\"1\"").is_err());
        assert!(serde_json::from_str::<TaskId>("1.5").is_err());
        assert!(serde_json::from_str::<TaskId>("18446744073709551616").is_err());
        assert_eq!(serde_json::from_str::<TaskId>("42").unwrap().get(), 42);
    }
}
