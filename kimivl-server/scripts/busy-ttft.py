#!/usr/bin/env python3
# Time to first token of a new ~256-token request on an idle server against the same while 3 long streams run
# (docs/server.md, continuous batching). Idle and busy alternate, round by round, in one server session, so that the
# machine's other load and the JIT's state weigh on both alike; the ratio is reported per round and for the medians.
# Usage: ./kimivl serve --port P [--parallel 4] & python3 busy-ttft.py P [WORDS, default 80] [ROUNDS, default 7]
#        [MAX TOKENS of the timed request, default 4: the time to its first visible text or its end; 1 on kimivl bench's
#        random model, whose tokens often have no text (and whose tokenizer has no merges: 62 words are ~256 tokens)]
import http.client, json, socket, sys, threading, time
port = int(sys.argv[1])
words = int(sys.argv[2]) if len(sys.argv) > 2 else 80          # ~256 tokens on nano-instruct
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 7
max_tokens = int(sys.argv[4]) if len(sys.argv) > 4 else 4
def body(content, max_tokens, ignore_eos=False):
    return json.dumps({"messages": [{"role": "user", "content": content}], "max_tokens": max_tokens, "temperature": 0,
                       "ignore_eos": ignore_eos, "stream": True, "stream_options": {"include_usage": True}})
def chat(content, max_tokens):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    t0 = time.time(); c.request("POST", "/v1/chat/completions", body(content, max_tokens), {"Content-Type": "application/json"})
    r = c.getresponse(); first = None; usage = None
    for line in r:
        line = line.decode().strip()
        if not line.startswith("data: {"): continue
        j = json.loads(line[6:])
        if j.get("usage"): usage = j["usage"]
        if first is None and j["choices"] and (j["choices"][0]["delta"].get("content") or j["choices"][0].get("finish_reason")):
            first = time.time() - t0
    c.close()
    return first, usage
def stream(content, started, stop, conns):
    """A long stream that runs until told to stop, then hangs up (the server frees its slot at the next chunk)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    c.request("POST", "/v1/chat/completions", body(content, 1500, True), {"Content-Type": "application/json"})
    conns.append(c)
    r = c.getresponse()
    try:
        for line in r:
            if line.startswith(b"data: {") and b'"content"' in line: started.set()
            if stop.is_set(): break
    except (OSError, http.client.HTTPException):
        pass                    # hung up by hang_up() while waiting for a chunk
    started.set()
    c.close()
def hang_up(conns):
    """Closes the streams' sockets: a random model's tokens often have no text, so a chunk may be long in coming."""
    for c in conns:
        try: c.sock.shutdown(socket.SHUT_RDWR)
        except (OSError, AttributeError): pass
def prompt(i): return "Request %d: " % i + " ".join("w%d" % k for k in range(words))
for i in range(3): chat(prompt(100 + i), 4)                                           # warm up
_, u = chat(prompt(99), 4)
idle, busy, ratios = [], [], []
for k in range(rounds):
    t, _ = chat(prompt(200 + k), max_tokens); idle.append(t)
    stop = threading.Event(); started = [threading.Event() for _ in range(3)]
    conns = []
    streams = [threading.Thread(target=stream, args=("Keep going %d %d" % (k, i), started[i], stop, conns), daemon=True) for i in range(3)]
    for s in streams: s.start()
    for e in started: e.wait(120)
    time.sleep(0.3)                                                                   # the three decode together now
    b, _ = chat(prompt(400 + k), max_tokens); busy.append(b)
    stop.set()
    hang_up(conns)
    for s in streams: s.join(120)
    ratios.append(b / t)
    print("round %d: idle %.3f s, busy %.3f s: %.2fx" % (k, t, b, b / t))
med = lambda v: sorted(v)[len(v) // 2]
print("prompt %d tokens; median of %d: idle %.3f s, while 3 streams run %.3f s: %.2fx (median of the rounds' ratios %.2fx)"
      % (u["prompt_tokens"], rounds, med(idle), med(busy), med(busy) / med(idle), med(ratios)))
