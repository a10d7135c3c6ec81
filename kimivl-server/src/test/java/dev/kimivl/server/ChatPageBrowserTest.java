package dev.kimivl.server;

import dev.kimivl.model.KimiVL;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.openqa.selenium.By;
import org.openqa.selenium.JavascriptExecutor;
import org.openqa.selenium.Keys;
import org.openqa.selenium.OutputType;
import org.openqa.selenium.StaleElementReferenceException;
import org.openqa.selenium.TakesScreenshot;
import org.openqa.selenium.WebDriver;
import org.openqa.selenium.WebElement;
import org.openqa.selenium.chrome.ChromeDriver;
import org.openqa.selenium.chrome.ChromeDriverService;
import org.openqa.selenium.chrome.ChromeOptions;
import org.openqa.selenium.support.ui.WebDriverWait;

import java.io.File;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The chat page in a real headless Chromium (Debian's chromium + chromium-driver, through Selenium) against a real
 * server on tiny-random: type, attach an image, a video and a PDF, watch the answer stream, stop a generation; the
 * screenshots are kept as {@code chat-page.png} and {@code chat-page-media.png} in the build directory. tiny-random's answers are random text: the plumbing is tested.
 */
class ChatPageBrowserTest {
    static final String CHROMIUM = "/usr/bin/chromium", DRIVER = "/usr/bin/chromedriver";
    static KimiVL model;
    static OpenAiServer server;
    static WebDriver browser;

    @BeforeAll
    static void start() throws Exception {
        if (!new File(CHROMIUM).canExecute() || !new File(DRIVER).canExecute()) {
            String msg = "ChatPageBrowserTest needs " + CHROMIUM + " and " + DRIVER + " (apt-get install -y chromium chromium-driver)";
            if (System.getenv("CI") != null) fail(msg);
            System.err.println("SKIPPED LOUDLY: " + msg);
            Assumptions.abort(msg);
        }
        model = KimiVL.open(Path.of("../models/tiny-random"));
        server = new OpenAiServer(model, new ServerDefaults("tiny-random", 64, 0.0, 0), "127.0.0.1", 0);
        server.start();
        ChromeOptions o = new ChromeOptions();
        o.setBinary(CHROMIUM);
        o.addArguments("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,850");
        browser = new ChromeDriver(new ChromeDriverService.Builder().usingDriverExecutable(new File(DRIVER)).build(), o);
    }

    @AfterAll
    static void stop() {
        if (browser != null) browser.quit();
        if (server != null) server.close();
        if (model != null) model.close();
    }

    /** The page re-renders a streaming message's status line as pieces arrive, so an element found a moment ago may be gone. */
    WebDriverWait waitUpTo(int seconds) {
        WebDriverWait wait = new WebDriverWait(browser, Duration.ofSeconds(seconds), Duration.ofMillis(20));
        wait.ignoring(StaleElementReferenceException.class);
        return wait;
    }

    Object js(String script, Object... args) { return ((JavascriptExecutor) browser).executeScript(script, args); }

    void setNumber(String id, int value) {
        WebElement e = browser.findElement(By.id(id));
        e.clear();
        e.sendKeys(String.valueOf(value));
    }

    @Test
    void typeAttachAndStream() throws Exception {
        String base = "http://127.0.0.1:" + server.port() + "/";
        var page = HttpClient.newHttpClient().send(HttpRequest.newBuilder(URI.create(base)).build(), HttpResponse.BodyHandlers.ofString());
        assertEquals(200, page.statusCode());
        assertTrue(page.headers().firstValue("Content-Security-Policy").orElse("").contains("default-src 'none'"), "nothing loads from elsewhere");
        assertFalse(Pattern.compile("(src|href)=\"(https?:)?//").matcher(page.body()).find(), "no external resources");

        browser.get(base);
        waitUpTo(20).until(d -> "tiny-random".equals(d.findElement(By.id("model")).getDomProperty("value")));

        // 1. an image by the picker, a message typed, Enter: the answer streams in pieces
        setNumber("temperature", 0);
        setNumber("maxTokens", 40);
        WebElement file = browser.findElement(By.id("file"));
        js("arguments[0].hidden = false", file);                         // a person clicks "Image"; Selenium types the path
        file.sendKeys(Path.of("../examples/shapes.png").toAbsolutePath().normalize().toString());
        waitUpTo(10).until(d -> d.findElements(By.cssSelector("#attached img")).size() == 1);
        js("arguments[0].hidden = true", file);
        WebElement input = browser.findElement(By.id("input"));
        input.sendKeys("What is in this picture?");
        input.sendKeys(Keys.ENTER);
        waitUpTo(60).until(d -> !d.findElements(By.cssSelector(".msg.assistant .status")).isEmpty());
        assertEquals(1, browser.findElements(By.cssSelector(".msg.user img")).size(), "the image is in the user's message");
        String status = browser.findElement(By.cssSelector(".msg.assistant .status")).getText();
        Matcher m = Pattern.compile("(\\d+) tokens · prompt (\\d+) tokens").matcher(status);
        assertTrue(m.find(), status);
        assertTrue(Integer.parseInt(m.group(2)) > 35, "the image's tokens reached the model: " + status);
        long updates = (Long) js("return window.kimivlUpdates || 0");
        assertTrue(updates > 1, "the answer arrived in pieces: " + updates + " updates for " + m.group(1) + " tokens");
        assertEquals(browser.findElements(By.cssSelector(".msg.error")).size(), 0);

        // 3. the conversation survives a reload (localStorage), with its image
        browser.navigate().refresh();
        waitUpTo(10).until(d -> d.findElements(By.cssSelector(".msg")).size() == 2);
        assertEquals(1, browser.findElements(By.cssSelector(".msg.user img")).size());
        assertEquals(1, browser.findElements(By.cssSelector("#convs li")).size());
    }

    /**
     * A video and a PDF attached by the picker go as video_url and file parts (issue 16 item 5), with the frame count
     * and pages typed next to them; the server turns them into frames and pages (MediaParts); the message shows them.
     */
    @Test
    void attachAVideoAndAPdf(@org.junit.jupiter.api.io.TempDir Path tmp) throws Exception {
        Path clip = Path.of("../kimivl-media/src/test/resources/video/clip.mp4").toAbsolutePath().normalize();   // 100x60, 40 frames
        Path pdf = tmp.resolve("doc.pdf");
        try (var doc = new org.apache.pdfbox.pdmodel.PDDocument()) {                  // two 100x100 pt pages
            for (int i = 0; i < 2; i++) doc.addPage(new org.apache.pdfbox.pdmodel.PDPage(new org.apache.pdfbox.pdmodel.common.PDRectangle(100, 100)));
            doc.save(pdf.toFile());
        }
        Path text = Files.writeString(tmp.resolve("notes.txt"), "not media");
        browser.get("http://127.0.0.1:" + server.port() + "/");
        waitUpTo(20).until(d -> "tiny-random".equals(d.findElement(By.id("model")).getDomProperty("value")));
        browser.findElement(By.id("new")).click();
        setNumber("temperature", 0);
        setNumber("maxTokens", 8);
        WebElement file = browser.findElement(By.id("file"));
        js("arguments[0].hidden = false", file);
        file.sendKeys(clip + "\n" + pdf + "\n" + text);
        js("arguments[0].hidden = true", file);
        waitUpTo(10).until(d -> d.findElements(By.cssSelector("#attached .file")).size() == 2);
        assertEquals("notes.txt: not an image, a video or a PDF", browser.findElement(By.id("note")).getText());
        browser.findElement(By.cssSelector("#attached .file.video input.frames")).sendKeys("2");
        browser.findElement(By.cssSelector("#attached .file.pdf input.pages")).sendKeys("2");
        WebElement input = browser.findElement(By.id("input"));
        input.sendKeys("What is shown?");
        input.sendKeys(Keys.ENTER);
        Pattern done = Pattern.compile("(\\d+) tokens · prompt (\\d+) tokens");
        String finalStatus = waitUpTo(60).until(d -> !d.findElements(By.cssSelector(".msg.error")).isEmpty() ? "error"
                : d.findElements(By.cssSelector(".msg.assistant .status")).stream().map(WebElement::getText)
                        .filter(t -> done.matcher(t).find()).findFirst().orElse(null));
        assertEquals(0, browser.findElements(By.cssSelector(".msg.error")).size(),
                () -> browser.findElements(By.cssSelector(".msg.error")).getFirst().getText());
        assertEquals("video_url,file,text", js("return kimivlLastRequest.messages.at(-1).content.map(p => p.type).join(',')"));
        assertEquals(2L, js("return kimivlLastRequest.messages.at(-1).content[0].video_url.frames"));
        assertEquals("2|doc.pdf", js("const f = kimivlLastRequest.messages.at(-1).content[1].file; return f.pages + '|' + f.filename"));
        Matcher m = done.matcher(finalStatus);
        assertTrue(m.find(), finalStatus);
        // 2 frames of 4x3 tokens and page 2 (200x200 px at 144 dpi: 8x8 tokens), with their labels and the text
        assertTrue(Integer.parseInt(m.group(2)) > 2 * 12 + 64, "the frames and the page reached the model: " + m.group());
        List<String> chips = browser.findElements(By.cssSelector(".msg.user .chip")).stream().map(WebElement::getText).toList();
        assertEquals(List.of("Video clip.mp4 · 2 frames", "PDF doc.pdf · pages 2"), chips);
        Path shot = Path.of(ChatPageBrowserTest.class.getProtectionDomain().getCodeSource().getLocation().toURI()).getParent().resolve("chat-page-media.png");
        Files.write(shot, ((TakesScreenshot) browser).getScreenshotAs(OutputType.BYTES));
    }

    /**
     * The shipped Thinking model (models/kimivl-nano-thinking) asked a two-step counting question opens ◁think▷ and writes its
     * reasoning: the page folds it into the closed "Thinking" block, and the answer never shows the markers.
     */
    @Test
    void aRealThinkingModelsReasoningIsFolded() throws Exception {
        try (KimiVL thinker = KimiVL.open(Path.of("../models/kimivl-nano-thinking"));
             OpenAiServer s = new OpenAiServer(thinker, new ServerDefaults("kimivl-nano-thinking", 48, 0.0, 0), "127.0.0.1", 0)) {
            s.start();
            browser.get("http://127.0.0.1:" + s.port() + "/");
            waitUpTo(20).until(d -> "kimivl-nano-thinking".equals(d.findElement(By.id("model")).getDomProperty("value")));
            browser.findElement(By.id("new")).click();
            setNumber("temperature", 0);
            setNumber("maxTokens", 48);
            WebElement file = browser.findElement(By.id("file"));
            js("arguments[0].hidden = false", file);
            file.sendKeys(Path.of("../examples/blue-circle.png").toAbsolutePath().normalize().toString());
            js("arguments[0].hidden = true", file);
            waitUpTo(10).until(d -> d.findElements(By.cssSelector("#attached img")).size() == 1);
            WebElement input = browser.findElement(By.id("input"));
            input.sendKeys("How many more blue shapes than red shapes are there?");
            input.sendKeys(Keys.ENTER);
            waitUpTo(60).until(d -> !d.findElements(By.cssSelector(".msg.assistant .status, .msg.error")).isEmpty());
            assertEquals(0, browser.findElements(By.cssSelector(".msg.error")).size());
            WebElement answer = browser.findElement(By.cssSelector(".msg.assistant"));
            String folded = (String) js("const d = arguments[0].querySelector('details.thinking');"
                    + "return d ? d.open + '|' + d.textContent.replace(/^Thinking/, '') : 'none'", answer);
            assertTrue(folded.startsWith("false|") && folded.strip().length() >= 26, "the reasoning sits in the closed block: " + folded);
            String body = answer.findElement(By.cssSelector(".body")).getText();
            assertFalse(body.contains("think▷") || folded.contains("think▷"), "no markers: " + folded + " / " + body);
        }
    }

    /**
     * A long answer, stopped: the stop button aborts the request and the page is ready for the next message. Served
     * by a paced scripted engine (a word every 20 ms for minutes), because a random model may end its answer at any
     * token, before the button can be clicked.
     */
    @Test
    void stopEndsALongAnswer() throws Exception {
        PacedEngine engine = new PacedEngine(100_000, 20, false);
        try (OpenAiServer paced = new OpenAiServer(engine, new ServerDefaults("paced", 100_000, 0.0, 0), ServerOptions.local(0))) {
            paced.start();
            browser.get("http://127.0.0.1:" + paced.port() + "/");
            waitUpTo(20).until(d -> "paced".equals(d.findElement(By.id("model")).getDomProperty("value")));
            setNumber("maxTokens", 4000);
            WebElement input = browser.findElement(By.id("input"));
            input.sendKeys("Write a very long story.");
            input.sendKeys(Keys.ENTER);
            waitUpTo(30).until(d -> (Boolean) js("const a = document.querySelectorAll('.msg.assistant');"
                    + "return !document.getElementById('stop').hidden && a.length == 1 && a[0].querySelector('.body').textContent.trim().length > 0"));
            waitUpTo(10).until(org.openqa.selenium.support.ui.ExpectedConditions.elementToBeClickable(By.id("stop"))).click();
            waitUpTo(10).until(d -> d.findElement(By.id("send")).isDisplayed());
            List<WebElement> answers = browser.findElements(By.cssSelector(".msg.assistant"));
            assertEquals("stopped", answers.get(0).findElement(By.cssSelector(".status")).getText());
            // the server saw the client leave and stopped generating: within a second or two alone, but once over 10 s
            // on a machine loaded by two training jobs beside the test run. It ends either way the server notices
            // first: a write to the gone client throws (aborted), or the disconnect watcher's cancel stops it between
            // tokens (finished, early); both well before the 4,000 tokens (80 s) it was asked for
            waitUpTo(30).until(d -> engine.aborted.get() + engine.finished.get() == 1);
            assertTrue(engine.lastEmitted < 4000, "stopped early, not run to max_tokens: " + engine.lastEmitted + " tokens");
            Path shot = Path.of(ChatPageBrowserTest.class.getProtectionDomain().getCodeSource().getLocation().toURI()).getParent().resolve("chat-page.png");
            Files.write(shot, ((TakesScreenshot) browser).getScreenshotAs(OutputType.BYTES));
            assertTrue(Files.size(shot) > 10_000, "screenshot kept at " + shot);
        }
    }

    @Test
    void markdownIsRenderedSafelyAndThinkingFolds() {
        browser.get("http://127.0.0.1:" + server.port() + "/");
        String html = (String) js("return markdown(arguments[0])", "**bold** `x<y` <script>alert(1)</script>\n\n```\ncode <b>\n```\n- a\n- b");
        assertTrue(html.contains("<strong>bold</strong>"), html);
        assertTrue(html.contains("<code>x&lt;y</code>"), html);
        assertTrue(html.contains("&lt;script&gt;") && !html.contains("<script>"), "model text is escaped: " + html);
        assertTrue(html.contains("<pre><code>code &lt;b&gt;\n</code></pre>"), html);
        assertTrue(html.contains("<ul><li>a</li><li>b</li></ul>"), html);
        String folded = (String) js("const e = messageEl({role: 'assistant', content: 'Answer', reasoning: 'Because.'});"
                + "return e.querySelector('details.thinking') ? (e.querySelector('details.thinking').open + '|' + e.querySelector('details.thinking').textContent) : 'none'");
        assertEquals("false|ThinkingBecause.", folded, "reasoning sits in a closed, collapsible block");

        // an image dropped on the page and one pasted are attached like a picked one
        Object attached = ((JavascriptExecutor) browser).executeAsyncScript("""
                const done = arguments[arguments.length - 1];
                const c = document.createElement('canvas'); c.width = 30; c.height = 20;
                c.getContext('2d').fillRect(0, 0, 10, 10);
                c.toBlob(blob => {
                  const dt = new DataTransfer();
                  dt.items.add(new File([blob], 'dropped.png', {type: 'image/png'}));
                  document.getElementById('drop').dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
                  const pasted = new DataTransfer();
                  pasted.items.add(new File([blob], 'pasted.png', {type: 'image/png'}));
                  document.dispatchEvent(new ClipboardEvent('paste', {clipboardData: pasted, bubbles: true, cancelable: true}));
                  setTimeout(() => done(document.querySelectorAll('#attached img').length), 500);
                }, 'image/png');
                """);
        assertEquals(2L, attached);
    }
}
