//! What events carry: JSON arguments and binary attachments.

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use socketlet_socketio_proto::binary;

/// The arguments of an event or an ack: JSON values, with binary attachments referred to by
/// placeholders inside them (`{"_placeholder":true,"num":N}` stands for `binary[N]`).
///
/// ```
/// use socketlet::Data;
/// use serde_json::json;
///
/// let mut data = Data::from(json!({"name": "report.pdf"}));
/// let file = data.push_binary(bytes::Bytes::from_static(b"%PDF"));
/// data.push(json!({"file": file}));
/// assert_eq!(data.args.len(), 2);
/// assert_eq!(data.binary.len(), 1);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Data {
    /// The JSON arguments, in order.
    pub args: Vec<Value>,
    /// The binary attachments, in placeholder order.
    pub binary: Vec<Bytes>,
}

impl Data {
    /// No arguments.
    pub fn new() -> Data {
        Data::default()
    }

    /// These arguments.
    pub fn args(args: Vec<Value>) -> Data {
        Data {
            args,
            binary: Vec::new(),
        }
    }

    /// Appends an argument.
    pub fn push(&mut self, arg: impl Into<Value>) -> &mut Self {
        self.args.push(arg.into());
        self
    }

    /// Appends a serializable argument. Fails if `arg` does not serialize to JSON.
    pub fn push_serialize<T: Serialize>(
        &mut self,
        arg: &T,
    ) -> Result<&mut Self, serde_json::Error> {
        self.args.push(serde_json::to_value(arg)?);
        Ok(self)
    }

    /// Adds an attachment and returns the placeholder to put where it belongs in the arguments.
    pub fn push_binary(&mut self, bytes: Bytes) -> Value {
        self.binary.push(bytes);
        binary::placeholder(self.binary.len() - 1)
    }

    /// Appends an argument that is a whole attachment (like emitting a `Buffer` in Node).
    pub fn push_binary_arg(&mut self, bytes: Bytes) -> &mut Self {
        let p = self.push_binary(bytes);
        self.args.push(p);
        self
    }

    /// The `i`-th argument deserialized as `T`.
    pub fn arg<T: DeserializeOwned>(&self, i: usize) -> Option<T> {
        self.args
            .get(i)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    }

    /// The `i`-th argument as a string slice, if it is a string.
    pub fn str(&self, i: usize) -> Option<&str> {
        self.args.get(i).and_then(Value::as_str)
    }

    /// The attachment a placeholder value stands for.
    pub fn binary_of(&self, placeholder: &Value) -> Option<&Bytes> {
        binary::placeholder_num(placeholder).and_then(|n| self.binary.get(n))
    }
}

impl From<Value> for Data {
    /// One argument.
    fn from(v: Value) -> Data {
        Data::args(vec![v])
    }
}

/// What an emit or an ack sends: any `Serialize` value as one argument (`emit("news", &item)`,
/// `ack.send(true)`), or a [`Data`] as it is (several arguments, binary attachments; see also
/// [`args!`](crate::args)).
pub trait IntoArgs {
    /// The arguments, or why the value does not serialize to JSON.
    fn into_args(self) -> Result<Data, serde_json::Error>;
}

impl<T: Serialize> IntoArgs for T {
    fn into_args(self) -> Result<Data, serde_json::Error> {
        Ok(Data::args(vec![serde_json::to_value(&self)?]))
    }
}

impl IntoArgs for Data {
    fn into_args(self) -> Result<Data, serde_json::Error> {
        Ok(self)
    }
}

/// Several arguments, each any `Serialize` value: `args![a, b]` is a
/// `Result<Data, serde_json::Error>` with `a` and `b` as two arguments (where passing `(a, b)`
/// would send one argument, a JSON array).
///
/// ```
/// let data = socketlet::args!["move", 3, [1.5, 2.0]].unwrap();
/// assert_eq!(data.args.len(), 3);
/// ```
#[macro_export]
macro_rules! args {
    ($($arg:expr),* $(,)?) => {
        (|| -> ::std::result::Result<$crate::Data, $crate::__private::serde_json::Error> {
            #[allow(unused_mut)]
            let mut data = $crate::Data::new();
            $( data.push_serialize(&$arg)?; )*
            ::std::result::Result::Ok(data)
        })()
    };
}

impl From<()> for Data {
    /// No arguments.
    fn from(_: ()) -> Data {
        Data::new()
    }
}

impl From<&str> for Data {
    /// One string argument.
    fn from(s: &str) -> Data {
        Data::from(Value::from(s))
    }
}

impl From<String> for Data {
    /// One string argument.
    fn from(s: String) -> Data {
        Data::from(Value::from(s))
    }
}

impl From<Bytes> for Data {
    /// One binary argument.
    fn from(b: Bytes) -> Data {
        let mut d = Data::new();
        d.push_binary_arg(b);
        d
    }
}
