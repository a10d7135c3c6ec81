package dev.kimivl.server;

import dev.kimivl.text.ChatMessage;
import dev.kimivl.text.ChatTemplate;
import dev.kimivl.text.Tokenizer;

import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;

/**
 * CPU time of one thread for the prompt of a conversation's second turn after a ~1,900-token first turn
 * (docs/server.md, Caches): the whole render + tokenize against the prompt cache's warm path, on a model directory's
 * template and tokenizer (default kimivl-nano-instruct). Thread CPU time, so that the shared machine's load does not
 * count. Not a test (surefire runs *Test): from the repository root, after building the test classes,
 * <pre>
 * java -cp kimivl-server/target/test-classes:kimivl-server/target/classes:kimivl-core/target/classes:DEPS \
 *      dev.kimivl.server.PromptCacheBench [ROUNDS, default 3000]
 * </pre>
 * with {@code -Dkimivl.templateParsed=false} (renderForResult per render) and {@code -Dkimivl.promptTail=false} (no
 * tails: the prompt cache renders and tokenizes every conversation whole) for the paths before these caches. The
 * second half of the rounds (JIT-warm) is averaged; every warm result is checked against the whole render's ids.
 */
public final class PromptCacheBench {
    public static void main(String[] args) throws Exception {
        Path dir = Path.of(System.getProperty("kimivl.model", "models/kimivl-nano-instruct"));
        Tokenizer tokenizer = Tokenizer.load(dir);
        ChatTemplate template = ChatTemplate.load(dir);
        template.isAppendOnly();                            // the probes, once, outside the timing
        PromptCache cache = new PromptCache(template, tokenizer);
        ThreadMXBean mx = ManagementFactory.getThreadMXBean();
        int rounds = args.length > 0 ? Integer.parseInt(args[0]) : 3000;
        long render = 0, encode = 0, warm = 0;
        int n = 0, tokens = 0;
        for (int k = 0; k < rounds; k++) {
            // the conversation of prefix-ttft.py: a long first question, a short answer and a short second question
            StringBuilder first = new StringBuilder("Summarise: ");
            for (int i = 0; i < 460; i++) first.append("word").append(i + 1000 * (k % 9 + 1)).append(' ');
            first.append(k);
            List<ChatMessage> turn1 = List.of(ChatMessage.user(first.toString()));
            cache.encode(turn1);
            List<ChatMessage> turn2 = List.of(turn1.getFirst(), ChatMessage.assistant("the words are word1000 and more"),
                    ChatMessage.user("Shorter, please."));
            long c0 = mx.getCurrentThreadCpuTime();
            String rendered = template.render(turn2, true);
            long c1 = mx.getCurrentThreadCpuTime();
            int[] whole = tokenizer.encode(rendered);
            long c2 = mx.getCurrentThreadCpuTime();
            int[] cached = cache.encode(turn2).ids();
            long c3 = mx.getCurrentThreadCpuTime();
            if (!Arrays.equals(whole, cached)) throw new AssertionError("round " + k + ": the cached ids differ from the whole render's");
            if (k >= rounds / 2) {
                render += c1 - c0;
                encode += c2 - c1;
                warm += c3 - c2;
                n++;
                tokens = whole.length;
            }
        }
        System.out.printf("%d tokens, thread CPU, mean of %d: whole render %.3f ms + tokenize %.3f ms = %.3f ms; "
                        + "warm turn through the prompt cache %.3f ms (%.1fx)%n", tokens, n, render / n / 1e6, encode / n / 1e6,
                (render + encode) / n / 1e6, warm / n / 1e6, (double) (render + encode) / warm);
    }
}
