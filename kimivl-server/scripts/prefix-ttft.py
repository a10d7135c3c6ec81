#!/usr/bin/env python3
# Time to first token of a second conversation turn, warm (the first turn's KV cache reused) against the same prompt
# cold, in one server session (docs/server.md).
# Usage: ./kimivl serve --port P & python3 prefix-ttft.py P [ROUNDS, default 3] [WORDS, default 330: ~2,000 tokens on
# tiny-random; 460 on kimivl-nano-instruct, whose context is 2,048; 220 on kimivl bench's random model, whose tokenizer
# has no merges: a token per byte] [WARM-UP WORDS, default 300] [MAX TOKENS, default 8: the time to the first visible
# text or the end; 1 on a random model, whose tokens often have no text]
# Each round is its own conversation (a first turn of ~2,000 tokens on tiny-random, then a short second turn). The cold
# measurement sends that second turn's prompt with the first word of the conversation changed ("Summarise" ->
# "Summarize"), so the prefix cache can reuse only the chat template's first tokens (the "cached" column shows it):
# the same prompt length and work, in the same session and JIT state.
import http.client, json, sys, time
port = int(sys.argv[1])
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
words = int(sys.argv[3]) if len(sys.argv) > 3 else 330
warmup_words = int(sys.argv[4]) if len(sys.argv) > 4 else 300
max_tokens = int(sys.argv[5]) if len(sys.argv) > 5 else 8
def ttft(messages):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    body = json.dumps({"messages": messages, "max_tokens": max_tokens, "temperature": 0, "stream": True, "stream_options": {"include_usage": True}})
    t0 = time.time(); c.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    r = c.getresponse(); first = None; text = ""; usage = None
    if r.status != 200: sys.exit("HTTP %d: %s" % (r.status, r.read().decode()[:300]))
    for line in r:
        line = line.decode().strip()
        if not line.startswith("data: {"): continue
        j = json.loads(line[6:])
        if j.get("usage"): usage = j["usage"]
        if j["choices"] and (j["choices"][0]["delta"].get("content") or j["choices"][0].get("finish_reason")):
            if first is None: first = time.time() - t0
            text += j["choices"][0]["delta"].get("content") or ""
    return (first if first is not None else time.time() - t0), text, usage
for w in range(3): ttft([{"role": "user", "content": ("warm up %d " % w) * warmup_words}])
warm, cold = [], []
for k in range(rounds):
    long = " ".join("word%d" % (i + 1000 * (k + 1)) for i in range(words))   # 4-digit numbers: every round the same length
    turn1 = [{"role": "user", "content": "Summarise: " + long}]
    t, a, u = ttft(turn1)
    print("round %d turn 1: ttft %.3f s, prompt %d, cached %d" % (k, t, u["prompt_tokens"], u["prompt_tokens_details"]["cached_tokens"]))
    turn2 = turn1 + [{"role": "assistant", "content": a}, {"role": "user", "content": "Shorter, please."}]
    t, _, u = ttft(turn2); warm.append(t)
    print("round %d turn 2 warm: ttft %.3f s, prompt %d, cached %d" % (k, t, u["prompt_tokens"], u["prompt_tokens_details"]["cached_tokens"]))
    other = [{"role": "user", "content": "Summarize: " + long}] + turn2[1:]
    t, _, u = ttft(other); cold.append(t)
    print("round %d turn 2 cold: ttft %.3f s, prompt %d, cached %d" % (k, t, u["prompt_tokens"], u["prompt_tokens_details"]["cached_tokens"]))
warm.sort(); cold.sort()
w, c = warm[len(warm) // 2], cold[len(cold) // 2]
print("median of %d: warm %.3f s, cold %.3f s: %.1fx" % (rounds, w, c, c / w))
