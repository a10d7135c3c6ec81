#!/usr/bin/env python3
# Time to first token of a new ~256-token request on an idle server, then while 3 long streams run (docs/server.md,
# continuous batching). Usage: ./kimivl serve --port P [--parallel 4] & python3 busy-ttft.py P [WORDS, default 80]
import http.client, json, sys, threading, time
port = int(sys.argv[1])
def chat(content, max_tokens, ignore_eos=False):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    body = json.dumps({"messages": [{"role": "user", "content": content}], "max_tokens": max_tokens, "temperature": 0,
                       "ignore_eos": ignore_eos, "stream": True, "stream_options": {"include_usage": True}})
    t0 = time.time(); c.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    r = c.getresponse(); first = None; usage = None
    for line in r:
        line = line.decode().strip()
        if not line.startswith("data: {"): continue
        j = json.loads(line[6:])
        if j.get("usage"): usage = j["usage"]
        if first is None and j["choices"] and (j["choices"][0]["delta"].get("content") or j["choices"][0].get("finish_reason")):
            first = time.time() - t0
    return first, usage
def prompt(i): return "Request %d: " % i + " ".join("w%d" % k for k in range(int(sys.argv[2]) if len(sys.argv) > 2 else 80))   # ~256 tokens on nano-instruct
for i in range(3): chat(prompt(100 + i), 4)                                           # warm up
idle = sorted(chat(prompt(200 + i), 4)[0] for i in range(5))[2]
_, u = chat(prompt(300), 4); print("prompt %d tokens; idle server: ttft %.3f s (median of 5)" % (u["prompt_tokens"], idle))
streams = [threading.Thread(target=chat, args=("Keep going %d" % i, 100000, True)) for i in range(3)]
for s in streams: s.daemon = True; s.start()
time.sleep(2)
busy = sorted(chat(prompt(400 + i), 4)[0] for i in range(5))[2]
print("while 3 streams run: ttft %.3f s (median of 5), %.2fx idle" % (busy, busy / idle))
