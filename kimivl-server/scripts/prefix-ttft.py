#!/usr/bin/env python3
# Time to first token of a second conversation turn, with and without the prefix cache (docs/server.md).
# Usage: ./kimivl serve --port P [--cache-mem 0] & python3 prefix-ttft.py P [cold]
import http.client, json, sys, time
port = int(sys.argv[1])
def ttft(messages):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    body = json.dumps({"messages": messages, "max_tokens": 8, "temperature": 0, "stream": True, "stream_options": {"include_usage": True}})
    t0 = time.time(); c.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    r = c.getresponse(); first = None; text = ""; usage = None
    for line in r:
        line = line.decode().strip()
        if not line.startswith("data: {"): continue
        j = json.loads(line[6:])
        if j.get("usage"): usage = j["usage"]
        if j["choices"] and j["choices"][0]["delta"].get("content"):
            if first is None: first = time.time() - t0
            text += j["choices"][0]["delta"]["content"]
    return (first if first is not None else time.time() - t0), text, usage
ttft([{"role": "user", "content": "warm up " * 300}]); ttft([{"role": "user", "content": "warm up again " * 300}])
long = " ".join("word%d" % i for i in range(400))
turn1 = [{"role": "user", "content": "Summarise: " + long}]
t, a, u = ttft(turn1); print("turn 1: ttft %.3f s, prompt %d" % (t, u["prompt_tokens"]))
turn2 = turn1 + [{"role": "assistant", "content": a}, {"role": "user", "content": "Shorter, please."}]
t, a2, u = ttft(turn2); print("turn 2 warm: ttft %.3f s, prompt %d, cached %d" % (t, u["prompt_tokens"], u["prompt_tokens_details"]["cached_tokens"]))

if len(sys.argv) > 2:
    t, a3, u = ttft([{"role": "user", "content": "unrelated " * 50}])
    t, a3, u = ttft(turn2[:-1] + [{"role": "user", "content": "Shorter, please!"}])
    print("turn 2 with cache off (its own prompt): ttft %.3f s, prompt %d, cached %d" % (t, u["prompt_tokens"], u["prompt_tokens_details"]["cached_tokens"]))
