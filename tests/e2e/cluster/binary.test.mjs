// The documentation, run: three `socketlet --redis URL --python-channel socketio` nodes (the real
// binary) behind the nginx block of the README, taken from the file itself (only the upstream
// addresses and the listen address are replaced), and python-socketio's RedisManager publishing to
// them. The binary's demo events are used: `join` (acks the rooms) and `chat` ({room, text}, sent
// to the room as `chat` {room, from, text, at}).
//
// With `ip_hash`, every client of 127.0.0.1 goes to the same node through nginx; one client
// connected directly to each node checks that messages cross the cluster both ways.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Env, HERE, PY5, ack, freePort, python, record, sleep, until } from "./helpers.mjs";

const ROOM = "lobby";
const GRACE_MS = 500;

/** The ```nginx block of the README, pointed at `ports` and listening on 127.0.0.1:`listen`. */
function documentedConfig(ports, listen) {
  const doc = readFileSync(join(HERE, "..", "..", "..", "README.md"), "utf8");
  // The block of "nginx in front" (the one with an upstream of nodes; other sections have theirs).
  const m = [...doc.matchAll(/```nginx\n([\s\S]*?)```/g)].find((b) => /^upstream socketlet \{$/m.test(b[1]));
  assert.ok(m, "the README has an nginx block with `upstream socketlet`");
  let conf = m[1];
  const servers = conf.match(/^\s*server \d+\.\d+\.\d+\.\d+:\d+;$/gm) ?? [];
  assert.equal(servers.length, ports.length, "one upstream server line per node in the README");
  servers.forEach((line, i) => {
    conf = conf.replace(line, line.replace(/\d+\.\d+\.\d+\.\d+:\d+/, `127.0.0.1:${ports[i]}`));
  });
  assert.match(conf, /^\s*listen 80;$/m);
  conf = conf.replace(/^(\s*)listen 80;$/m, `$1listen 127.0.0.1:${listen};`);
  return conf;
}

describe(
  "the socketlet binary: three nodes with --redis behind the README's nginx block",
  { timeout: 90000 },
  () => {
    const env = new Env();
    let redis;
    let nodes;
    let nginxUrl;
    let clients;
    /** One client connected straight to each node. */
    let direct;
    /** Clients through nginx. */
    let proxied;

    before(async () => {
      redis = await env.redis();
      nodes = [];
      for (let i = 0; i < 3; i += 1) {
        nodes.push(
          await env.binary({
            label: `binary-node${i}`,
            args: ["--redis", redis.url, "--python-channel", "socketio"],
          }),
        );
      }
      const listen = await freePort();
      await env.nginxWith(
        documentedConfig(
          nodes.map((n) => n.port),
          listen,
        ),
        [listen],
      );
      nginxUrl = `http://127.0.0.1:${listen}`;
      clients = env.clients();
      // The binary has no `welcome` event: connect without waiting for one.
      const connect = async (url, opts) => {
        const s = await clients.connect(url, { ...opts, welcome: false });
        s.chats = record(s, "chat");
        const [rooms] = await ack(s, "join", [ROOM]);
        assert.ok(rooms.includes(ROOM), s.name);
        return s;
      };
      direct = [];
      for (const [i, n] of nodes.entries())
        direct.push(await connect(n.url, { name: `direct@node${i}` }));
      proxied = [
        await connect(nginxUrl, { name: "v4-polling via nginx", transports: ["polling"] }),
        await connect(nginxUrl, {
          name: "v2-polling via nginx",
          generation: 2,
          transports: ["polling"],
        }),
        await connect(nginxUrl, { name: "v4-upgrade via nginx" }),
        await connect(nginxUrl, { name: "v2-upgrade via nginx", generation: 2 }),
      ];
    });
    after(() => env.cleanup());

    const everyone = () => [...direct, ...proxied];

    async function chatFrom(sender, text) {
      for (const s of everyone()) s.chats.length = 0;
      sender.emit("chat", { room: ROOM, text });
      await until(() => everyone().every((s) => s.chats.length >= 1), {
        what: `everyone to get "${text}"`,
      });
      await sleep(GRACE_MS);
      for (const s of everyone()) {
        assert.equal(s.chats.length, 1, `${s.name} got "${text}" once`);
        assert.equal(s.chats[0][0].text, text, s.name);
        assert.equal(s.chats[0][0].from, sender.id, s.name);
      }
    }

    it("every node joined the cluster; polling and upgrade work through the documented block", async () => {
      for (const n of nodes) assert.match(n.log(), /joined the Redis cluster/);
      for (const s of proxied.filter((x) => x.name.includes("upgrade"))) {
        await until(() => s.io.engine.transport.name === "websocket", {
          what: `${s.name} to upgrade`,
        });
      }
      for (const s of proxied.filter((x) => x.name.includes("polling"))) {
        assert.equal(s.io.engine.transport.name, "polling", s.name);
      }
    });

    it("a browser-like client (Origin: the proxy's own origin) passes the default same-origin check", async () => {
      // What a page served from the proxy's address sends; the node sees it through the forwarded
      // Host and X-Forwarded-Proto headers of the documented block.
      for (const transports of [["polling"], ["websocket"]]) {
        const s = await clients.connect(nginxUrl, {
          name: `origin-${transports[0]}`,
          welcome: false,
          transports,
          extraHeaders: { Origin: nginxUrl },
        });
        const [rooms] = await ack(s, "join", ["origin-check"]);
        assert.ok(rooms.includes("origin-check"));
        s.disconnect();
      }
      // A foreign origin is refused, so the check did run.
      await assert.rejects(
        clients.connect(nginxUrl, {
          welcome: false,
          transports: ["polling"],
          reconnection: false,
          extraHeaders: { Origin: "http://elsewhere.example" },
        }),
        /connect_error/,
      );
    });

    it("a chat from a client behind nginx reaches the clients of all three nodes once", async () => {
      await chatFrom(proxied[1], "from behind nginx");
    });

    it("a chat from each node reaches the clients behind nginx once", async () => {
      for (const [i, s] of direct.entries()) await chatFrom(s, `from node ${i}`);
    });

    it("python-socketio's RedisManager (write_only) reaches every client through --python-channel", async () => {
      for (const s of everyone()) s.chats.length = 0;
      await python(PY5, "json_emitter.py", [
        redis.url,
        JSON.stringify([
          ["emit", "chat", { room: ROOM, from: "django", text: "from python" }, { room: ROOM }],
        ]),
      ]);
      await until(() => everyone().every((s) => s.chats.length >= 1), {
        what: "everyone to get the python emit",
      });
      await sleep(GRACE_MS);
      for (const s of everyone())
        assert.deepEqual(s.chats, [[{ room: ROOM, from: "django", text: "from python" }]], s.name);
    });
  },
);
