//! Event handlers and what they take: one shape for every handler.
//!
//! A handler is an async function (or closure) whose arguments are *extractors*: each is built
//! from the event it handles, in any order, as many as it needs (up to six):
//!
//! | extractor | what it is |
//! | --- | --- |
//! | [`Socket`] | the socket the event came on |
//! | [`Args<T>`] | the arguments as any `serde::Deserialize` type (see below) |
//! | [`TryArgs<T>`] | the same, or why they did not fit: the handler decides |
//! | [`Data`] | the raw arguments: JSON values and binary attachments |
//! | [`AckSender`] | the way to answer the client's ack (a no-op when it asked for none) |
//! | [`EventName`] | the event's name (for handlers registered for several events) |
//! | [`Event`] | all of it at once: name, raw arguments, ack |
//!
//! ```
//! use serde::Deserialize;
//! use socketlet::{AckSender, Args, Socket, SocketIo};
//!
//! #[derive(Deserialize)]
//! struct Chat {
//!     room: String,
//!     text: String,
//! }
//!
//! let io = SocketIo::new();
//! io.of("/").on_connect(|socket: Socket| async move {
//!     socket.on("chat", |socket: Socket, Args(msg): Args<Chat>, ack: AckSender| async move {
//!         let _ = socket.to(msg.room.clone()).emit("chat", &msg.text);
//!         let _ = ack.send(true);
//!     });
//! });
//! ```
//!
//! # Arguments that do not fit
//!
//! [`Args<T>`] reads a single argument as `T`, and several as `T` from their array (so a tuple
//! takes them in order: `Args<(String, u32)>`). When they do not fit `T`, the handler is not
//! called, and a client that asked for an ack gets one argument,
//! `{"error": {"message": "invalid arguments: ..."}}`; the event is logged at debug. A handler
//! that wants to answer bad input itself takes [`TryArgs<T>`] instead.
//!
//! # When a handler runs
//!
//! Handlers start in the order events arrive. A handler's future is polled once at once, on the
//! thread that read the event: most handlers (answer an ack, join a room, emit) finish there
//! and cost no task; one that awaits something continues as a task of its own, so a slow
//! handler never holds up its connection. Several handlers of one event (each
//! [`Socket::on`] adds one, as Node's listeners) run in registration order; the first
//! [`AckSender::send`] among them answers the ack, later ones are no-ops.

use crate::data::Data;
use crate::error::EmitError;
use crate::socket::Socket;
use serde::de::DeserializeOwned;
use serde_json::Value;
use socketlet_socketio_proto::{Packet, PacketData};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A handler's future, boxed once per event.
pub(crate) type HandlerFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// An event from a client, whole: its name, raw arguments and the way to answer its ack. Also
/// an extractor (it takes everything; other extractors of the same handler then see no data
/// and no ack).
#[derive(Debug)]
pub struct Event {
    /// The event name.
    pub name: String,
    /// Its arguments.
    pub data: Data,
    /// The way to answer, if the client asked for an ack.
    pub ack: Option<AckSender>,
}

/// What extractors are built from: one event on one socket.
#[derive(Debug)]
pub struct EventParts {
    socket: Socket,
    name: String,
    data: Data,
    ack: AckSender,
}

impl EventParts {
    pub(crate) fn new(socket: Socket, name: String, data: Data, ack: AckSender) -> Self {
        EventParts {
            socket,
            name,
            data,
            ack,
        }
    }

    /// The socket the event came on.
    pub fn socket(&self) -> &Socket {
        &self.socket
    }

    /// The event name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The raw arguments.
    pub fn data(&self) -> &Data {
        &self.data
    }

    /// A copy for the next handler of the same event: the same socket, name and arguments, and
    /// an ack that only the first of them to answer sends.
    pub(crate) fn share(&mut self) -> EventParts {
        EventParts {
            socket: self.socket.clone(),
            name: self.name.clone(),
            data: self.data.clone(),
            ack: self.ack.share(),
        }
    }
}

/// Why the arguments of an event did not fit the type a handler asked for.
#[derive(Debug, Clone)]
pub struct ArgsError {
    message: String,
}

impl ArgsError {
    /// What did not fit.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ArgsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid arguments: {}", self.message)
    }
}

impl std::error::Error for ArgsError {}

/// Something a handler takes as an argument, built from the event (see the [module
/// docs](self)). Extractors that take the arguments or the ack ([`Data`], [`Event`],
/// [`AckSender`]) take them once: the handler's later extractors see none.
pub trait FromEvent: Sized + Send + 'static {
    /// Builds the value, or says why the event does not fit.
    fn from_event(parts: &mut EventParts) -> Result<Self, ArgsError>;
}

impl FromEvent for Socket {
    fn from_event(parts: &mut EventParts) -> Result<Self, ArgsError> {
        Ok(parts.socket.clone())
    }
}

impl FromEvent for Data {
    fn from_event(parts: &mut EventParts) -> Result<Self, ArgsError> {
        Ok(std::mem::take(&mut parts.data))
    }
}

impl FromEvent for AckSender {
    fn from_event(parts: &mut EventParts) -> Result<Self, ArgsError> {
        Ok(parts.ack.take())
    }
}

impl FromEvent for Event {
    fn from_event(parts: &mut EventParts) -> Result<Self, ArgsError> {
        let ack = parts.ack.take();
        Ok(Event {
            name: parts.name.clone(),
            data: std::mem::take(&mut parts.data),
            ack: ack.requested().then_some(ack),
        })
    }
}

/// The event's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventName(pub String);

impl FromEvent for EventName {
    fn from_event(parts: &mut EventParts) -> Result<Self, ArgsError> {
        Ok(EventName(parts.name.clone()))
    }
}

/// The event's arguments as `T`: one argument as `T`, several as `T` from their array. When
/// they do not fit, the handler is not called (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq)]
pub struct Args<T>(pub T);

/// The event's arguments as `T`, or why they do not fit it (the handler answers bad input
/// itself).
#[derive(Debug)]
pub struct TryArgs<T>(pub Result<T, ArgsError>);

/// Reads the arguments as `T`: the one argument, or the array of all of them.
fn args_as<T: DeserializeOwned>(data: &Data) -> Result<T, ArgsError> {
    let error = |e: serde_json::Error| ArgsError {
        message: e.to_string(),
    };
    let all = || Value::Array(data.args.clone());
    match data.args.as_slice() {
        // One argument: `T` is read from it, or else from the array of it (a one-tuple); when
        // neither fits, the first error says more.
        [one] => T::deserialize(one).or_else(|e| T::deserialize(&all()).map_err(|_| error(e))),
        _ => T::deserialize(&all()).map_err(error),
    }
}

impl<T: DeserializeOwned + Send + 'static> FromEvent for Args<T> {
    fn from_event(parts: &mut EventParts) -> Result<Self, ArgsError> {
        args_as(&parts.data).map(Args)
    }
}

impl<T: DeserializeOwned + Send + 'static> FromEvent for TryArgs<T> {
    fn from_event(parts: &mut EventParts) -> Result<Self, ArgsError> {
        Ok(TryArgs(args_as(&parts.data)))
    }
}

/// Answers a client's event (an extractor). Sending consumes it: an event is acked at most
/// once. When the client asked for no ack, [`AckSender::requested`] is false and sending does
/// nothing.
#[derive(Debug)]
pub struct AckSender {
    target: Option<(Socket, u64)>,
    /// Shared by the handlers of one event when there are several: the first to send wins.
    once: Option<Arc<AtomicBool>>,
}

impl AckSender {
    pub(crate) fn new(socket: &Socket, id: Option<u64>) -> Self {
        AckSender {
            target: id.map(|id| (socket.clone(), id)),
            once: None,
        }
    }

    /// Whether the client asked for an ack.
    pub fn requested(&self) -> bool {
        self.target.is_some()
    }

    /// Takes the ack out, leaving one that answers nothing.
    fn take(&mut self) -> AckSender {
        std::mem::replace(
            self,
            AckSender {
                target: None,
                once: None,
            },
        )
    }

    /// Another sender of the same ack: the first of the two to send answers it.
    fn share(&mut self) -> AckSender {
        if self.target.is_none() {
            return AckSender {
                target: None,
                once: None,
            };
        }
        let once = self
            .once
            .get_or_insert_with(|| Arc::new(AtomicBool::new(false)))
            .clone();
        AckSender {
            target: self.target.clone(),
            once: Some(once),
        }
    }

    /// Sends the ack with `args` as its arguments: any `Serialize` value is one argument; a
    /// [`Data`] is sent as it is (several arguments, binary attachments).
    pub fn send(self, args: impl crate::data::IntoArgs) -> Result<(), EmitError> {
        let Some((socket, id)) = self.target else {
            return Ok(());
        };
        if let Some(once) = &self.once {
            if once.swap(true, Ordering::AcqRel) {
                return Ok(());
            }
        }
        let data = args.into_args()?;
        let packet = Packet {
            nsp: socket.ns().name().to_owned(),
            data: PacketData::Ack {
                args: data.args,
                id,
            },
            attachments: data.binary,
        };
        socket.send_packet(&packet, false)
    }
}

/// An event whose arguments did not fit a handler, and why.
#[derive(Debug)]
pub struct Refused {
    /// The event.
    pub parts: EventParts,
    /// What did not fit.
    pub error: ArgsError,
}

/// A function that handles events: an async function or closure whose arguments are
/// [`FromEvent`] extractors (see the [module docs](self)). `T` is the tuple of its argument
/// types; it is inferred.
pub trait Handler<T>: Send + Sync + 'static {
    /// Builds the arguments and starts the handler; `Err` when the event did not fit them.
    fn call(&self, parts: EventParts) -> Result<HandlerFuture, Box<Refused>>;
}

macro_rules! handler_for {
    ($($arg:ident),*) => {
        impl<F, Fut, $($arg,)*> Handler<($($arg,)*)> for F
        where
            F: Fn($($arg),*) -> Fut + Send + Sync + 'static,
            Fut: Future<Output = ()> + Send + 'static,
            $($arg: FromEvent,)*
        {
            #[allow(non_snake_case, unused_mut, unused_variables)]
            fn call(&self, mut parts: EventParts) -> Result<HandlerFuture, Box<Refused>> {
                $(
                    let $arg = match $arg::from_event(&mut parts) {
                        Ok(v) => v,
                        Err(error) => return Err(Box::new(Refused { parts, error })),
                    };
                )*
                Ok(Box::pin(self($($arg),*)))
            }
        }
    };
}

handler_for!();
handler_for!(A1);
handler_for!(A1, A2);
handler_for!(A1, A2, A3);
handler_for!(A1, A2, A3, A4);
handler_for!(A1, A2, A3, A4, A5);
handler_for!(A1, A2, A3, A4, A5, A6);

/// A handler with its argument types erased, as sockets keep them.
pub(crate) type BoxedHandler =
    Arc<dyn Fn(EventParts) -> Result<HandlerFuture, Box<Refused>> + Send + Sync>;

/// Erases a handler's argument types.
pub(crate) fn boxed<H, T>(handler: H) -> BoxedHandler
where
    H: Handler<T>,
    T: 'static,
{
    Arc::new(move |parts| handler.call(parts))
}

/// Answers an event whose arguments did not fit its handler: an ack with the error, if the
/// client asked for one.
pub(crate) fn refuse(refused: Refused) {
    let Refused { parts, error } = refused;
    tracing::debug!(id = %parts.socket.id(), event = %parts.name, "{error}");
    let _ = parts.ack.send(serde_json::json!({
        "error": { "message": error.to_string() }
    }));
}
