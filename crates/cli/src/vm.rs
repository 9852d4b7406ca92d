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

use crate::provision::{Provisioner, VmConfig};
use serde_json::{json, Value};
use socketlet::jobs::{InProcessBackend, JobEvent, JobId, Jobs, Outcome};
use socketlet::Socket;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Most VMs one `open_vms` may ask for.
const MAX_VMS_PER_REQUEST: usize = 16;

/// The console's settings and its jobs.
#[derive(Clone)]
pub struct Console {
    /// Runs the `open_vm` jobs.
    pub jobs: Jobs,
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
    /// A console whose `open_vm` jobs go through `provisioner`, `max_concurrent` at a time.
    pub fn new(
        provisioner: Arc<dyn Provisioner>,
        max_concurrent: u32,
        deadline: Duration,
        disconnect_after: bool,
        provisioner_name: String,
        simulated: bool,
    ) -> Console {
        let backend =
            InProcessBackend::new(max_concurrent).register("open_vm", move |ctx, input| {
                let provisioner = provisioner.clone();
                async move {
                    let vm: VmConfig =
                        serde_json::from_value(input).map_err(|e| format!("bad VM config: {e}"))?;
                    provisioner.open(vm, ctx).await
                }
            });
        Console {
            jobs: Jobs::new(backend),
            deadline,
            disconnect_after,
            provisioner_name,
            simulated,
        }
    }

    /// Registers the console's events on a newly connected socket.
    pub fn attach(&self, socket: &Socket) {
        let console = self.clone();
        socket.on("list_vms", move |_socket, ev| {
            let reply = json!({
                "provisioner": console.provisioner_name,
                "simulated": console.simulated,
                "vms": catalog(),
            });
            async move {
                if let Some(ack) = ev.ack {
                    let _ = ack.send(reply);
                }
            }
        });
        let console = self.clone();
        socket.on("open_vms", move |socket, ev| {
            let console = console.clone();
            async move {
                let vms = match parse_request(ev.data.args.first()) {
                    Ok(vms) => vms,
                    Err(error) => {
                        if let Some(ack) = ev.ack {
                            let _ = ack.send(json!({ "error": error }));
                        }
                        return;
                    }
                };
                console.open(socket, vms, ev.ack).await;
            }
        });
    }

    async fn open(&self, socket: Socket, vms: Vec<VmConfig>, ack: Option<socketlet::AckSender>) {
        let inputs = vms
            .iter()
            .map(|vm| ("open_vm", serde_json::to_value(vm).unwrap_or(Value::Null)));
        let batch = match self.jobs.submit_batch(inputs) {
            Ok(batch) => batch,
            Err(e) => {
                if let Some(ack) = ack {
                    let _ = ack.send(json!({ "error": e.to_string() }));
                }
                return;
            }
        };
        let names: HashMap<JobId, String> = batch
            .ids()
            .iter()
            .cloned()
            .zip(vms.iter().map(|vm| vm.name.clone()))
            .collect();
        if let Some(ack) = ack {
            let jobs: Vec<Value> = batch
                .ids()
                .iter()
                .map(|id| json!({ "job": id, "vm": names.get(id) }))
                .collect();
            let _ = ack.send(json!({ "jobs": jobs }));
        }
        tracing::info!(id = %socket.id(), vms = vms.len(), "opening VMs");
        let deadline = tokio::time::Instant::now() + self.deadline;
        let results = batch
            .wait(deadline, |event| {
                // If the client left, this fails and nothing is sent; the job goes on.
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

fn parse_request(arg: Option<&Value>) -> Result<Vec<VmConfig>, String> {
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
            vm.validate()?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_validated() {
        let ok = json!([{"name": "a", "vcpus": 1, "memory_mb": 512, "image": "x.qcow2"}]);
        assert_eq!(parse_request(Some(&ok)).map(|v| v.len()), Ok(1));
        let wrapped = json!({"vms": ok});
        assert_eq!(parse_request(Some(&wrapped)).map(|v| v.len()), Ok(1));
        assert!(parse_request(None).is_err());
        assert!(parse_request(Some(&json!([]))).is_err());
        assert!(parse_request(Some(&json!([{"name": "a"}]))).is_err());
        let many: Vec<Value> = (0..17)
            .map(|i| json!({"name": format!("v{i}"), "vcpus": 1, "memory_mb": 512, "image": "x"}))
            .collect();
        assert!(parse_request(Some(&Value::Array(many))).is_err());
        let evil = json!([{"name": "a", "vcpus": 1, "memory_mb": 512, "image": "--help"}]);
        assert!(parse_request(Some(&evil)).is_err());
    }

    #[test]
    fn the_catalog_is_valid() {
        for vm in catalog() {
            assert_eq!(vm.validate(), Ok(()), "{vm:?}");
        }
    }
}
