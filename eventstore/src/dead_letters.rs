//! Who parks a dead letter: the closed set of the `source` column of the service
//! schema's `dead_letters` table (migration 0007). `messaging` parks, `admin` lists
//! and re-drives: both name a source with this one type.

/// Who parked a dead letter (with the `clap` feature, also a value of `dlq --source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum DeadLetterSource {
    /// A consumer: a message it read could never be processed.
    Consumer,
    /// The outbox relay: a committed event it could never publish.
    Relay,
}

impl DeadLetterSource {
    /// The value of the `source` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Consumer => "consumer",
            Self::Relay => "relay",
        }
    }
}
