//! At-least-once delivery, exactly-once effects: replaying whole topics changes
//! nothing; a poison message is dead-lettered and the consumer goes on.
