//! The VM console: the story behind socketlet, done right.
//!
//! The page emits `open_vms` with the VMs to open and gets an ack with the job ids; each job
//! reports `vm_progress`; when all are done (or the deadline passes) the server emits
//! `vm_response` with every result and, as in the story, disconnects the client (unless told
//! not to). Nothing blocks while the VMs open.
//!
//! | event | direction | payload |
//! | --- | --- | --- |
//! | `list_vms` (ack) | client → server | ack: `{"provisioner": "...", "simulated": bool, "vms": [VmConfig...]}` |
//! | `open_vms` (ack) | client → server | `[VmConfig...]` or `{"vms": [...]}`; ack: `{"jobs": [{"job", "vm"}...]}` or `{"error"}` |
//! | `vm_progress` | server → client | `{"job", "vm", "event": "started"/"progress"/"done"/"failed", "fraction"?, "message"?, "result"?, "error"?}` |
//! | `vm_response` | server → client | `{"results": [{"job", "vm", "status": "done"/"failed"/"running"/"queued", "value"?}], "complete": bool}` |
//!
//! Bounds (issue 19, finding F): one request asks for 1 to [`MAX_VMS_PER_REQUEST`] VMs, each
//! from the catalogue ([`catalog`]: its names are free, its images are not); a client (a socket)
//! has at most `--vm-max-per-client` VMs queued or opening at once (default
//! [`DEFAULT_MAX_PER_CLIENT`]); at most `--vm-max-queued` VMs wait for a free slot across all
//! clients (default [`DEFAULT_MAX_QUEUED`]). A request past a bound is refused whole, in its ack:
//! `{"error": "too many VMs at once: ..."}` or `{"error": "the server is busy: ..."}`. When a
//! client leaves (or is disconnected after its `vm_response`), its VMs that have not started
//! opening are cancelled and never open; the ones opening finish.
//!
//! The VMs open through a [`Provisioner`] in this process ([`Console::new`]) or, with
//! `--vm-provisioner dramatiq`, through Python dramatiq workers ([`dramatiq_config`]): each VM
//! is a message `open_vm_task(id, name, user_id)`, and the actor's stored result is the VM's
//! `value` in `vm_response` (its failure, `"actor raised <type>: <msg>"`). There a VM is
//! "started" once its message is handed to dramatiq (it can no longer be cancelled), and
//! `--vm-concurrency` bounds how many are in dramatiq at once.

use crate::provision::{Provisioner, VmConfig};
use serde_json::{json, Value};
use socketlet::{AckSender, Data, Socket};
use socketlet_jobs::{
    InProcessBackend, JobBackend, JobError, JobEvent, JobGroup, JobId, Jobs, Outcome,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Most VMs one `open_vms` may ask for.
pub const MAX_VMS_PER_REQUEST: usize = 16;

/// Default of `--vm-max-per-client`: VMs one client may have queued or opening at once (one
/// full request).
pub const DEFAULT_MAX_PER_CLIENT: usize = 16;

/// Default of `--vm-max-queued`: VMs waiting for a free slot, across all clients. With the
/// default 4 slots and VMs of a few seconds, more would not start within a request's deadline.
pub const DEFAULT_MAX_QUEUED: usize = 64;

/// How much the console takes on at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// VMs opened at the same time, across all clients (`--vm-concurrency`).
    pub max_concurrent: u32,
    /// VMs waiting for a free slot, across all clients (`--vm-max-queued`).
    pub max_queued: usize,
    /// VMs one client may have queued or opening at once (`--vm-max-per-client`).
    pub max_per_client: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_concurrent: 4,
            max_queued: DEFAULT_MAX_QUEUED,
            max_per_client: DEFAULT_MAX_PER_CLIENT,
        }
    }
}

/// The console's settings and its jobs.
#[derive(Clone)]
pub struct Console {
    /// Runs the `open_vm` jobs.
    pub jobs: Jobs,
    /// VMs one client may have queued or opening at once.
    pub max_per_client: usize,
    /// The images a VM may ask for (the catalogue's).
    pub images: Arc<Vec<String>>,
    /// One deadline for a whole request.
    pub deadline: Duration,
    /// Disconnect the client after `vm_response`, as the story's server did.
    pub disconnect_after: bool,
    /// Shown by the page (e.g. "simulated").
    pub provisioner_name: String,
    /// Whether the provisioner is the simulated one (the page says so).
    pub simulated: bool,
}

impl Console {
    /// A console whose `open_vm` jobs go through `provisioner`, within `limits`.
    pub fn new(
        provisioner: Arc<dyn Provisioner>,
        limits: Limits,
        deadline: Duration,
        disconnect_after: bool,
        provisioner_name: String,
        simulated: bool,
    ) -> Console {
        let backend =
            InProcessBackend::new(limits.max_concurrent).register("open_vm", move |ctx, input| {
                let provisioner = provisioner.clone();
                async move {
                    let vm: VmConfig =
                        serde_json::from_value(input).map_err(|e| format!("bad VM config: {e}"))?;
                    provisioner.open(vm, ctx).await
                }
            });
        Console::on_backend(
            backend,
            limits,
            deadline,
            disconnect_after,
            provisioner_name,
            simulated,
        )
    }

    /// A console whose `open_vm` jobs go to `backend` (e.g. a [`DramatiqBackend`] made with
    /// [`dramatiq_config`]), within `limits` (the backend bounds how many run at once).
    ///
    /// [`DramatiqBackend`]: socketlet_dramatiq::DramatiqBackend
    pub fn on_backend(
        backend: impl JobBackend,
        limits: Limits,
        deadline: Duration,
        disconnect_after: bool,
        provisioner_name: String,
        simulated: bool,
    ) -> Console {
        Console {
            jobs: Jobs::new(backend).with_max_queued(limits.max_queued),
            max_per_client: limits.max_per_client.max(1),
            images: Arc::new(catalog_images()),
            deadline,
            disconnect_after,
            provisioner_name,
            simulated,
        }
    }

    /// Registers the console's events on a newly connected socket. The socket gets a group of
    /// jobs of its own: bounded by `max_per_client`, and closed when the socket disconnects
    /// (its queued VMs are cancelled; the ones opening finish).
    pub fn attach(&self, socket: &Socket) {
        let group = self.jobs.group(self.max_per_client);
        let console = self.clone();
        socket.on("list_vms", move |ack: AckSender| {
            let reply = json!({
                "provisioner": console.provisioner_name,
                "simulated": console.simulated,
                "vms": catalog(),
            });
            async move {
                let _ = ack.send(reply);
            }
        });
        let console = self.clone();
        let requests = group.clone();
        socket.on(
            "open_vms",
            move |socket: Socket, data: Data, ack: AckSender| {
                let console = console.clone();
                let group = requests.clone();
                async move {
                    match parse_request(data.args.first(), &console.images) {
                        Ok(vms) => console.open(socket, &group, vms, ack).await,
                        Err(error) => {
                            let _ = ack.send(json!({ "error": error }));
                        }
                    }
                }
            },
        );
        socket.on_disconnect(move |socket: Socket, _reason| {
            // At once, not when this future runs: nothing queued may start after the client left.
            let cancelled = group.close();
            async move {
                if cancelled > 0 {
                    tracing::info!(id = %socket.id(), cancelled, "client left: its queued VMs are cancelled");
                }
            }
        });
    }

    async fn open(&self, socket: Socket, group: &JobGroup, vms: Vec<VmConfig>, ack: AckSender) {
        let user_id = user_id(&socket.data(), socket.id());
        let inputs = vms.iter().map(|vm| ("open_vm", job_input(vm, &user_id)));
        let batch = match group.submit_batch(inputs) {
            Ok(batch) => batch,
            Err(e) => {
                tracing::debug!(id = %socket.id(), vms = vms.len(), "open_vms refused: {e}");
                let _ = ack.send(json!({ "error": refusal(&e) }));
                return;
            }
        };
        let names: HashMap<JobId, String> = batch
            .ids()
            .iter()
            .cloned()
            .zip(vms.iter().map(|vm| vm.name.clone()))
            .collect();
        let jobs: Vec<Value> = batch
            .ids()
            .iter()
            .map(|id| json!({ "job": id, "vm": names.get(id) }))
            .collect();
        let _ = ack.send(json!({ "jobs": jobs }));
        tracing::info!(id = %socket.id(), vms = vms.len(), "opening VMs");
        let deadline = tokio::time::Instant::now() + self.deadline;
        let results = batch
            .wait(deadline, |event| {
                // If the client left, this fails and nothing is sent.
                let _ = socket.emit("vm_progress", progress_json(event, &names));
            })
            .await;
        let complete = results
            .iter()
            .all(|(_, o)| matches!(o, Outcome::Done(_) | Outcome::Failed(_)));
        let results: Vec<Value> = results
            .iter()
            .map(|(id, outcome)| {
                let mut v = serde_json::to_value(outcome).unwrap_or(Value::Null);
                v["job"] = json!(id);
                v["vm"] = json!(names.get(id));
                v
            })
            .collect();
        let _ = socket.emit(
            "vm_response",
            json!({ "results": results, "complete": complete }),
        );
        if self.disconnect_after {
            socket.disconnect();
        }
    }
}

/// Who opens the VMs: the socket's data `user` when the gateway's connect hook set one, else
/// the socket's id.
fn user_id(data: &Value, socket_id: &str) -> Value {
    match data.get("user") {
        Some(user) if !user.is_null() => user.clone(),
        _ => json!(socket_id),
    }
}

/// An `open_vm` job's input: the VM's fields and `user_id` (a provisioner reads the fields; the
/// dramatiq actor gets `name` and `user_id`).
fn job_input(vm: &VmConfig, user_id: &Value) -> Value {
    let mut input = serde_json::to_value(vm).unwrap_or(Value::Null);
    if let Value::Object(fields) = &mut input {
        fields.insert("user_id".into(), user_id.clone());
    }
    input
}

/// The queue of the dramatiq actor that opens VMs (dramatiq's default queue).
pub const DRAMATIQ_QUEUE: &str = "default";

/// The dramatiq actor that opens VMs, as the story's Python code had it:
/// `@dramatiq.actor(store_results=True) def open_vm_task(id, name, user_id)`.
pub const DRAMATIQ_ACTOR: &str = "open_vm_task";

/// The console's `open_vm` jobs as dramatiq messages: each VM of an `open_vms` request becomes
/// `open_vm_task(id, name, user_id)` on queue `default` (`id`: the job's id, e.g. `job-7`, unique
/// within this server process; `name`: the VM's; `user_id`: the socket's data `user` when the
/// gateway's connect hook set one, else the socket's id), sent through the broker at
/// `broker_url` (`redis://` or `amqp://`); what the actor returns, read from the Redis results
/// backend at `results_url`, is what the console shows. At most `max_in_flight` VMs are in
/// dramatiq at once, each awaited for `deadline` at most (a request's deadline: past it, its
/// `vm_response` went out, and awaiting longer would only keep others waiting).
pub fn dramatiq_config(
    broker_url: &str,
    results_url: &str,
    max_in_flight: u32,
    deadline: Duration,
) -> socketlet_dramatiq::DramatiqConfig {
    socketlet_dramatiq::DramatiqConfig::new(broker_url, results_url)
        .with_actor("open_vm", dramatiq_actor())
        .with_max_in_flight(max_in_flight as usize)
        .with_result_timeout(deadline)
}

/// `open_vm_task(id, name, user_id)` on queue `default`, from an `open_vm` job's input.
pub fn dramatiq_actor() -> socketlet_dramatiq::Actor {
    socketlet_dramatiq::Actor::new(DRAMATIQ_QUEUE, DRAMATIQ_ACTOR).with_call(|id, input| {
        let name = input.get("name").cloned().unwrap_or(Value::Null);
        let user_id = input.get("user_id").cloned().unwrap_or(Value::Null);
        Ok(socketlet_dramatiq::Call::args(vec![
            json!(id),
            name,
            user_id,
        ]))
    })
}

/// What the client is told when its request is refused.
fn refusal(e: &JobError) -> String {
    match e {
        JobError::GroupFull { max_active } => format!(
            "too many VMs at once: a client may have at most {max_active} VMs queued or opening; \
             wait for yours to finish"
        ),
        JobError::QueueFull { max_queued } => format!(
            "the server is busy: {max_queued} VMs are already waiting to open; try again later"
        ),
        JobError::ShuttingDown => "the server is shutting down".into(),
        JobError::GroupClosed => "this connection is closing".into(),
        other => other.to_string(),
    }
}

fn parse_request(arg: Option<&Value>, images: &[String]) -> Result<Vec<VmConfig>, String> {
    let list = match arg {
        Some(Value::Array(list)) => list,
        Some(Value::Object(o)) => match o.get("vms") {
            Some(Value::Array(list)) => list,
            _ => return Err("expected {\"vms\": [...]}".into()),
        },
        _ => return Err("expected a list of VMs".into()),
    };
    if list.is_empty() || list.len() > MAX_VMS_PER_REQUEST {
        return Err(format!("ask for 1 to {MAX_VMS_PER_REQUEST} VMs"));
    }
    list.iter()
        .map(|v| {
            let vm: VmConfig =
                serde_json::from_value(v.clone()).map_err(|e| format!("bad VM config: {e}"))?;
            vm.validate_for(images)?;
            Ok(vm)
        })
        .collect()
}

fn progress_json(event: &JobEvent, names: &HashMap<JobId, String>) -> Value {
    let mut v = serde_json::to_value(event).unwrap_or(Value::Null);
    v["vm"] = json!(names.get(&event.job));
    v
}

/// The VMs the console offers.
pub fn catalog() -> Vec<VmConfig> {
    let vm = |name: &str, vcpus, memory_mb, image: &str| VmConfig {
        name: name.into(),
        vcpus,
        memory_mb,
        image: image.into(),
    };
    vec![
        vm("web-1", 2, 2048, "debian-12.qcow2"),
        vm("web-2", 2, 2048, "debian-12.qcow2"),
        vm("db-1", 8, 16384, "postgres-16.qcow2"),
        vm("cache-1", 2, 4096, "redis-7.qcow2"),
        vm("build-1", 16, 32768, "ubuntu-24.04.qcow2"),
        vm("legacy-1", 1, 1024, "broken-centos-6.qcow2"),
    ]
}

/// The images of the catalogue, each once: the only images a VM may ask for.
pub fn catalog_images() -> Vec<String> {
    let mut images: Vec<String> = catalog().into_iter().map(|vm| vm.image).collect();
    images.sort();
    images.dedup();
    images
}

/// socketlet's in-process test client (a polling client that drives the service directly).
#[cfg(test)]
#[path = "../../socketlet/tests/common/mod.rs"]
mod common;

#[cfg(test)]
mod tests {
    use super::common::{within, Polling, SEP};
    use super::*;
    use socketlet::SocketIo;
    use socketlet_jobs::{BoxFuture, JobContext};
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn vm_json(name: &str, image: &str) -> Value {
        json!({"name": name, "vcpus": 1, "memory_mb": 512, "image": image})
    }

    #[test]
    fn requests_are_validated() {
        let images = catalog_images();
        let ok = json!([vm_json("a", "debian-12.qcow2")]);
        assert_eq!(parse_request(Some(&ok), &images).map(|v| v.len()), Ok(1));
        let wrapped = json!({"vms": ok});
        assert_eq!(
            parse_request(Some(&wrapped), &images).map(|v| v.len()),
            Ok(1)
        );
        assert!(parse_request(None, &images).is_err());
        assert!(parse_request(Some(&json!([])), &images).is_err());
        assert!(parse_request(Some(&json!([{"name": "a"}])), &images).is_err());
        let many: Vec<Value> = (0..17)
            .map(|i| vm_json(&format!("v{i}"), "debian-12.qcow2"))
            .collect();
        assert!(parse_request(Some(&Value::Array(many)), &images).is_err());
        let evil = json!([vm_json("a", "--help")]);
        assert!(parse_request(Some(&evil), &images).is_err());
    }

    /// Issue 19, finding E, at the console's door: names that would be options, images that
    /// would be paths, and images that are not the catalogue's are refused in the ack's error.
    #[test]
    fn option_names_and_images_outside_the_catalogue_are_refused() {
        let images = catalog_images();
        for name in ["--help", "--force", "-rf", "-"] {
            let req = json!([vm_json(name, "debian-12.qcow2")]);
            let err = parse_request(Some(&req), &images).expect_err(name);
            assert!(err.starts_with("bad VM name"), "{name}: {err}");
        }
        for image in [
            "../../../../etc/shadow",
            "/etc/passwd",
            "not-in-catalogue.qcow2",
        ] {
            let req = json!([vm_json("web-1", image)]);
            let err = parse_request(Some(&req), &images).expect_err(image);
            assert!(err.starts_with("web-1: "), "{image}: {err}");
        }
        // One bad VM refuses the whole request.
        let mixed = json!([
            vm_json("web-1", "debian-12.qcow2"),
            vm_json("web-2", "/etc/passwd")
        ]);
        assert!(parse_request(Some(&mixed), &images).is_err());
    }

    /// `--vm-provisioner dramatiq`: a VM is the story's `open_vm_task(id, name, user_id)`, the
    /// user being the gateway's when it set one, else the socket.
    #[test]
    fn a_vm_is_the_storys_open_vm_task_message() {
        assert_eq!(user_id(&Value::Null, "sid-1"), json!("sid-1"));
        assert_eq!(
            user_id(&json!({"user": null, "data": {}}), "sid-1"),
            json!("sid-1")
        );
        assert_eq!(user_id(&json!({"user": "alice"}), "sid-1"), json!("alice"));
        assert_eq!(user_id(&json!({"user": 42}), "sid-1"), json!(42));
        let vm = catalog()[0].clone();
        let input = job_input(&vm, &json!("alice"));
        assert_eq!(input["user_id"], "alice");
        let back: VmConfig = serde_json::from_value(input.clone()).expect("a VM");
        assert_eq!(back, vm, "the provisioners still read the VM");
        let (message, delay) = dramatiq_actor()
            .message(&JobId("job-3".into()), input)
            .expect("a message");
        assert_eq!(message.queue_name, "default");
        assert_eq!(message.actor_name, "open_vm_task");
        assert_eq!(
            message.args,
            [json!("job-3"), json!("web-1"), json!("alice")]
        );
        assert!(message.kwargs.is_empty() && message.options.is_empty());
        assert_eq!(delay, None);
    }

    #[test]
    fn the_catalog_is_valid() {
        let images = catalog_images();
        assert_eq!(images.len(), 5);
        for vm in catalog() {
            assert_eq!(vm.validate_for(&images), Ok(()), "{vm:?}");
        }
    }

    /// Counts the VMs that started opening and those that finished.
    #[derive(Default)]
    struct Gauge {
        started: AtomicUsize,
        finished: AtomicUsize,
    }

    /// A provisioner taking `secs` seconds (of virtual time) per VM.
    struct Slow {
        secs: u64,
        gauge: Arc<Gauge>,
    }

    impl Provisioner for Slow {
        fn open(
            &self,
            vm: VmConfig,
            _ctx: JobContext,
        ) -> BoxFuture<'static, Result<Value, String>> {
            let (secs, gauge) = (self.secs, self.gauge.clone());
            Box::pin(async move {
                gauge.started.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(secs)).await;
                gauge.finished.fetch_add(1, Ordering::SeqCst);
                Ok(json!({ "name": vm.name }))
            })
        }
    }

    /// A server with the console only, its VMs taking `secs` each.
    fn server(limits: Limits, secs: u64) -> (SocketIo, Console, Arc<Gauge>) {
        let gauge = Arc::new(Gauge::default());
        let provisioner = Arc::new(Slow {
            secs,
            gauge: gauge.clone(),
        });
        let console = Console::new(
            provisioner,
            limits,
            Duration::from_secs(600),
            false,
            "test".into(),
            true,
        );
        let io = SocketIo::new();
        let attach = console.clone();
        io.of("/").on_connect(move |socket: Socket| {
            attach.attach(&socket);
            async {}
        });
        (io, console, gauge)
    }

    async fn client(io: &SocketIo) -> Polling {
        let client = Polling::open(io).await;
        client.connect(None).await;
        client
    }

    /// A request for `n` VMs of the catalogue's images.
    fn vms(n: usize) -> Value {
        Value::Array(
            (0..n)
                .map(|i| vm_json(&format!("vm-{i}"), "debian-12.qcow2"))
                .collect(),
        )
    }

    /// Emits one `open_vms` per request, all in one POST, with ack ids from `first_id`; the
    /// answers, by ack id.
    async fn open_vms(client: &Polling, first_id: u64, requests: &[Value]) -> BTreeMap<u64, Value> {
        let body: Vec<String> = requests
            .iter()
            .zip(first_id..)
            .map(|(vms, id)| format!("42{id}{}", json!(["open_vms", vms])))
            .collect();
        client.send(&body.join(&SEP.to_string())).await;
        let mut acks = BTreeMap::new();
        while acks.len() < requests.len() {
            for packet in within("the acks", client.recv()).await {
                if packet == "2" {
                    client.send("3").await;
                } else if let Some(ack) = packet.strip_prefix("43") {
                    let at = ack.find('[').expect("ACK arguments");
                    let id: u64 = ack[..at].parse().expect("ACK id");
                    let args: Value = serde_json::from_str(&ack[at..]).expect("ACK JSON");
                    acks.insert(id, args[0].clone());
                }
            }
        }
        acks
    }

    fn accepted(ack: &Value) -> Option<usize> {
        ack.get("jobs").and_then(Value::as_array).map(Vec::len)
    }

    /// Issue 19, finding F: one socket flooding `open_vms` gets its requests past its bound
    /// refused in their acks, and queues nothing more; another client is not held up by it.
    #[tokio::test(start_paused = true)]
    async fn a_flood_of_open_vms_past_the_per_client_bound_is_refused_in_the_ack() {
        let limits = Limits {
            max_concurrent: 1,
            max_queued: 64,
            max_per_client: 4,
        };
        let (io, console, gauge) = server(limits, 10);
        let flooder = client(&io).await;
        let acks = open_vms(&flooder, 1, &[vms(3)]).await;
        assert_eq!(accepted(&acks[&1]), Some(3), "{acks:?}");
        let flood: Vec<Value> = (0..200).map(|_| vms(1)).collect();
        let acks = open_vms(&flooder, 100, &flood).await;
        assert_eq!(acks.len(), 200);
        let mut taken = 0;
        for ack in acks.values() {
            match accepted(ack) {
                Some(n) => taken += n,
                None => assert_eq!(
                    ack["error"],
                    "too many VMs at once: a client may have at most 4 VMs queued or opening; \
                     wait for yours to finish"
                ),
            }
        }
        assert_eq!(taken, 1, "room for one more VM only");
        assert_eq!(console.jobs.queued(), 3, "one opening, three queued");
        // A request of more than the bound is refused whole.
        let other = client(&io).await;
        let acks = open_vms(&other, 1, &[vms(5), vms(2)]).await;
        assert!(acks[&1]["error"].is_string(), "{acks:?}");
        assert_eq!(
            accepted(&acks[&2]),
            Some(2),
            "another client has its own bound"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(gauge.started.load(Ordering::SeqCst), 1);
    }

    /// Issue 19, finding F: past the server-wide bound, a request is refused in its ack too.
    #[tokio::test(start_paused = true)]
    async fn past_the_server_wide_bound_open_vms_is_refused_in_the_ack() {
        let limits = Limits {
            max_concurrent: 1,
            max_queued: 4,
            max_per_client: 16,
        };
        let (io, console, _gauge) = server(limits, 10);
        let first = client(&io).await;
        // One takes the free slot, then four wait (a VM counts as queued until it starts, so a
        // single request of five would pass the bound).
        let acks = open_vms(&first, 1, &[vms(1), vms(4)]).await;
        assert_eq!(accepted(&acks[&1]), Some(1), "{acks:?}");
        assert_eq!(accepted(&acks[&2]), Some(4), "{acks:?}");
        assert_eq!(console.jobs.queued(), 4);
        let second = client(&io).await;
        let acks = open_vms(&second, 1, &[vms(1)]).await;
        assert_eq!(
            acks[&1]["error"],
            "the server is busy: 4 VMs are already waiting to open; try again later"
        );
    }

    /// Issue 19, finding F: the queued VMs of a client that left are cancelled (they never
    /// start), the one it had opening finishes, and the next client's VM gets the slot.
    #[tokio::test(start_paused = true)]
    async fn a_client_that_leaves_has_its_queued_vms_cancelled_and_the_opening_one_finishes() {
        let limits = Limits {
            max_concurrent: 1,
            max_queued: 64,
            max_per_client: 16,
        };
        let (io, console, gauge) = server(limits, 10);
        let leaving = client(&io).await;
        let acks = open_vms(&leaving, 1, &[vms(3)]).await;
        assert_eq!(accepted(&acks[&1]), Some(3));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(gauge.started.load(Ordering::SeqCst), 1);
        assert_eq!(console.jobs.queued(), 2);
        leaving.send("41").await; // the client leaves the namespace
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(
            console.jobs.queued(),
            0,
            "its queued VMs are cancelled at once"
        );
        let staying = client(&io).await;
        let acks = open_vms(&staying, 1, &[vms(1)]).await;
        assert_eq!(accepted(&acks[&1]), Some(1));
        // The leaving client's VM finishes at 10 s, the other client's opens from 10 s to 20 s.
        tokio::time::sleep(Duration::from_secs(21)).await;
        assert_eq!(
            gauge.finished.load(Ordering::SeqCst),
            2,
            "the opening VM finished, then the next client's"
        );
        tokio::time::sleep(Duration::from_secs(100)).await;
        assert_eq!(
            gauge.started.load(Ordering::SeqCst),
            2,
            "the cancelled VMs never started"
        );
    }
}
