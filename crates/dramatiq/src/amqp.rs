//! Enqueueing on dramatiq's RabbitMQ broker (`dramatiq.brokers.rabbitmq.RabbitmqBroker`), with
//! `lapin`.
//!
//! dramatiq publishes a message on the default exchange (`""`) with the queue's name as routing
//! key (`<queue>.DQ` for a delayed message), `delivery_mode` 2 (persistent) and, when the
//! message's `options.broker_priority` is set, that priority; the body is the encoded message.
//! Before the first publish to a queue it declares three durable queues, with these arguments:
//!
//! | queue | arguments |
//! | --- | --- |
//! | `<queue>` | `x-dead-letter-exchange: ""`, `x-dead-letter-routing-key: "<queue>.XQ"` (+ `x-max-priority` with `max_priority`) |
//! | `<queue>.DQ` | the same |
//! | `<queue>.XQ` | `x-message-ttl: 604800000` (7 days; the workers' `dramatiq_dead_message_ttl`) |
//!
//! RabbitMQ refuses a declaration whose arguments differ from the queue's
//! (`PRECONDITION_FAILED`), so this module declares exactly those (with [`AmqpOptions`] matching
//! the workers' settings), or nothing at all ([`AmqpOptions::declare`] off: the workers, which
//! declare their queues when they start, must then have run once).
//!
//! Unlike dramatiq's default, every publish is confirmed (publisher confirms, and `mandatory` so
//! that a message no queue takes comes back as an error instead of vanishing); neither changes
//! what the workers receive. A connection that failed is dropped and made again on the next
//! message (the queues declared again).

use crate::message::{dq_name, xq_name, Message};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use std::time::Duration;

/// How the workers' RabbitMQ broker is set up; the queues are declared to match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmqpOptions {
    /// Declare the queues as dramatiq does before publishing (default: yes).
    pub declare: bool,
    /// The workers' `RabbitmqBroker(max_priority=...)`, if any (queues get `x-max-priority`).
    pub max_priority: Option<u8>,
    /// The workers' dead-letter TTL (`dramatiq_dead_message_ttl`, default 7 days): the
    /// `x-message-ttl` of `<queue>.XQ`.
    pub dead_message_ttl: Duration,
}

impl Default for AmqpOptions {
    fn default() -> Self {
        AmqpOptions {
            declare: true,
            max_priority: None,
            dead_message_ttl: Duration::from_millis(86_400_000 * 7),
        }
    }
}

/// An integer as pika encodes a Python `int` in a field table: `I` (32 bits) when it fits,
/// else `l` (64 bits).
fn int_value(n: u64) -> AMQPValue {
    match i32::try_from(n) {
        Ok(n) => AMQPValue::LongInt(n),
        Err(_) => AMQPValue::LongLongInt(i64::try_from(n).unwrap_or(i64::MAX)),
    }
}

/// The arguments dramatiq declares `<queue>` and `<queue>.DQ` with.
pub(crate) fn queue_arguments(queue: &str, options: &AmqpOptions) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        ShortString::from("x-dead-letter-exchange"),
        AMQPValue::LongString(LongString::from("")),
    );
    args.insert(
        ShortString::from("x-dead-letter-routing-key"),
        AMQPValue::LongString(LongString::from(xq_name(queue))),
    );
    if let Some(p) = options.max_priority.filter(|&p| p > 0) {
        args.insert(ShortString::from("x-max-priority"), int_value(u64::from(p)));
    }
    args
}

/// The arguments dramatiq declares `<queue>.XQ` with.
pub(crate) fn dead_letter_arguments(options: &AmqpOptions) -> FieldTable {
    let mut args = FieldTable::default();
    let ttl = u64::try_from(options.dead_message_ttl.as_millis()).unwrap_or(u64::MAX);
    args.insert(ShortString::from("x-message-ttl"), int_value(ttl));
    args
}

/// An open connection and its confirming channel.
struct Link {
    connection: Connection,
    channel: Channel,
}

/// Publishes messages to dramatiq's queues on RabbitMQ.
pub(crate) struct AmqpBroker {
    url: String,
    options: AmqpOptions,
    /// The canonical queues to declare on every new connection.
    queues: Vec<String>,
    link: tokio::sync::Mutex<Option<Link>>,
}

impl AmqpBroker {
    /// Connects and declares `queues` (canonical names); an error says what failed.
    pub(crate) async fn connect(
        url: &str,
        options: AmqpOptions,
        queues: Vec<String>,
    ) -> Result<AmqpBroker, String> {
        let broker = AmqpBroker {
            url: url.to_owned(),
            options,
            queues,
            link: tokio::sync::Mutex::new(None),
        };
        let link = broker.open().await?;
        *broker.link.lock().await = Some(link);
        Ok(broker)
    }

    async fn open(&self) -> Result<Link, String> {
        let properties =
            ConnectionProperties::default().with_connection_name("socketlet-dramatiq".into());
        let connection = Connection::connect(&self.url, properties)
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| format!("cannot open a channel: {e}"))?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| format!("cannot enable publisher confirms: {e}"))?;
        if self.options.declare {
            for queue in &self.queues {
                self.declare(&channel, queue).await?;
            }
        }
        Ok(Link {
            connection,
            channel,
        })
    }

    /// Declares `<queue>`, `<queue>.DQ` and `<queue>.XQ` as dramatiq does.
    async fn declare(&self, channel: &Channel, queue: &str) -> Result<(), String> {
        let durable = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        let declarations = [
            (queue.to_owned(), queue_arguments(queue, &self.options)),
            (dq_name(queue), queue_arguments(queue, &self.options)),
            (xq_name(queue), dead_letter_arguments(&self.options)),
        ];
        for (name, args) in declarations {
            channel
                .queue_declare(ShortString::from(name.as_str()), durable, args)
                .await
                .map_err(|e| {
                    format!(
                        "cannot declare queue {name:?} as dramatiq does ({e}); if it exists with \
                         other arguments, match the workers' max_priority and dead-letter TTL"
                    )
                })?;
        }
        Ok(())
    }

    /// Publishes `message` (already delayed if it should be) and waits for RabbitMQ's confirm.
    pub(crate) async fn publish(&self, message: &Message) -> Result<(), String> {
        let channel = {
            let mut link = self.link.lock().await;
            let usable = link.as_ref().is_some_and(|l| {
                l.connection.status().connected() && l.channel.status().connected()
            });
            if !usable {
                *link = None;
                *link = Some(self.open().await?);
            }
            match link.as_ref() {
                Some(l) => l.channel.clone(),
                None => return Err("no connection".into()),
            }
        };
        let result = publish_on(&channel, message).await;
        if result.is_err() {
            // Whatever broke, the next message starts on a fresh connection.
            let mut link = self.link.lock().await;
            if link
                .as_ref()
                .is_some_and(|l| l.channel.id() == channel.id())
            {
                *link = None;
            }
        }
        result
    }

    /// Closes the connection (at shutdown).
    pub(crate) async fn close(&self) {
        if let Some(link) = self.link.lock().await.take() {
            let _ = link.connection.close(200, "shutting down".into()).await;
        }
    }
}

async fn publish_on(channel: &Channel, message: &Message) -> Result<(), String> {
    let mut properties = BasicProperties::default().with_delivery_mode(2);
    if let Some(priority) = message
        .options
        .get("broker_priority")
        .and_then(serde_json::Value::as_u64)
    {
        properties = properties.with_priority(u8::try_from(priority).unwrap_or(u8::MAX));
    }
    let options = BasicPublishOptions {
        mandatory: true,
        ..BasicPublishOptions::default()
    };
    let confirm = channel
        .basic_publish(
            ShortString::from(""),
            ShortString::from(message.queue_name.as_str()),
            options,
            &message.encode(),
            properties,
        )
        .await
        .map_err(|e| format!("cannot publish: {e}"))?
        .await
        .map_err(|e| format!("RabbitMQ did not confirm the message: {e}"))?;
    match confirm {
        Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
        Confirmation::Ack(Some(returned)) => Err(format!(
            "RabbitMQ has no queue {:?} for the message ({} {})",
            message.queue_name, returned.reply_code, returned.reply_text
        )),
        Confirmation::Nack(_) => Err("RabbitMQ refused the message (nack)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declarations_are_dramatiqs() {
        let options = AmqpOptions::default();
        let args = queue_arguments("default", &options);
        let pairs: Vec<(String, AMQPValue)> = (&args)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        assert_eq!(
            pairs,
            [
                (
                    "x-dead-letter-exchange".to_owned(),
                    AMQPValue::LongString("".into())
                ),
                (
                    "x-dead-letter-routing-key".to_owned(),
                    AMQPValue::LongString("default.XQ".into())
                ),
            ]
        );
        // The delay queue dead-letters to the queue's XQ, not to "default.DQ.XQ".
        assert_eq!(queue_arguments("default.DQ", &options), args);
        let with_priority = AmqpOptions {
            max_priority: Some(5),
            ..AmqpOptions::default()
        };
        let args = queue_arguments("default", &with_priority);
        assert_eq!(
            args.inner().get(&ShortString::from("x-max-priority")),
            Some(&AMQPValue::LongInt(5))
        );
        let xq = dead_letter_arguments(&options);
        assert_eq!(
            xq.inner().get(&ShortString::from("x-message-ttl")),
            Some(&AMQPValue::LongInt(604_800_000))
        );
        assert_eq!(int_value(1 << 40), AMQPValue::LongLongInt(1 << 40));
    }
}
