package dev.kimivl.server;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.UnknownHostException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Notices that an HTTP client has gone away while its request waits in the queue, reads its prompt or generates,
 * without writing to it.
 *
 * <p>Why this exists: the JDK's {@code HttpServer} gives a handler no access to its connection's socket, and a
 * non-streaming request writes nothing until its answer is whole, so a client that gave up (a timeout, Ctrl-C) would
 * have its whole answer computed for nobody; a streaming one is noticed only at the write after the next token with
 * text, never while it waits in the queue or while its prompt is read. On Linux the kernel publishes every TCP
 * connection and its state in {@code /proc/net/tcp} and {@code /proc/net/tcp6}: one thread reads them while any
 * request is watched (nothing otherwise) and marks a watched connection gone when it is no longer ESTABLISHED (the
 * client closed it: CLOSE_WAIT; or it was reset and left the table).
 *
 * <p>Cost: the kernel walks its whole connection hash table for each read, however few connections there are: 3.4 ms
 * of CPU per table on this machine (a Firecracker VM, 24 GB). So the pause between passes adapts to what a pass costs,
 * {@link #CPU_SHARE} of one core at most ({@code 50 ×} the pass's CPU time; at least {@code minPeriod}, at most
 * {@link #MAX_PERIOD_MILLIS}), and a pass reads only the tables where the watched connections were found (a server's
 * connections are all in one: tcp6 for Java's dual-stack sockets). Here that is a pass every ~170 ms: a client is
 * noticed within ~0.2 s, one or two tokens of the full model on this machine; on a host where a read costs 0.1 ms,
 * every {@code minPeriod}.
 *
 * <p>A client that only half-closes (shuts its sending side down and still reads) looks the same as one that closed;
 * llama.cpp's server (a peek that reads end-of-file) and uvicorn ({@code http.disconnect} on end-of-file) treat it as
 * a disconnect too, and the usual HTTP clients (curl, the OpenAI SDKs, browsers) never do it. Where the tables cannot
 * be read (not Linux) or a connection is not found in them at its first look (an address form not understood),
 * {@link Watch#gone()} stays false and only a failed write notices the client.
 */
final class ConnectionWatch implements AutoCloseable {
    /** Linux TCP states (include/net/tcp_states.h) as /proc writes them: two hex digits. */
    private static final int ESTABLISHED = 0x01;
    private static final List<Path> TABLES = List.of(Path.of("/proc/net/tcp"), Path.of("/proc/net/tcp6"));

    /** The shortest pause between passes. */
    static final long DEFAULT_PERIOD_MILLIS = 20;
    /** The longest pause between passes, however costly a pass. */
    static final long MAX_PERIOD_MILLIS = 1000;
    /** The share of one core the passes may take: the pause is the pass's CPU time / CPU_SHARE. */
    static final double CPU_SHARE = 0.02;

    private final long periodMillis;
    private final java.lang.management.ThreadMXBean cpu = java.lang.management.ManagementFactory.getThreadMXBean();
    private final List<Path> tables;
    private final Set<Watch> watched = ConcurrentHashMap.newKeySet();
    private final Object lock = new Object();
    private final Thread thread;
    private volatile boolean closed;
    /** Passes over the tables so far (the test checks that the poller sleeps when nothing is watched). */
    private volatile long passes;
    /** The pause after the last pass, in ms (what the pass cost decided). */
    private volatile long lastPauseMillis;

    /** One watched connection, from the request's arrival until its last byte (close it then). */
    final class Watch implements AutoCloseable {
        private final String key;
        private volatile boolean gone, seen;
        private int looks;                       // passes that looked for it (the poller's thread only)
        private int table = -1;                  // the table it was found in (the poller's thread only)
        private Thread waiter;                   // interrupted when the client goes, while set (guarded by this)

        private Watch(String key) { this.key = key; }

        /** True once the client has closed the connection (or it was reset). */
        boolean gone() { return gone; }

        /**
         * Runs {@code wait} (a blocking wait for a slot) so that the client's going interrupts it: the thread is
         * interrupted only while {@code wait} runs, and an interruption that lands just after it is cleared when the
         * client is gone (the caller then checks {@link #gone()}).
         */
        double interruptible(Waiting wait) throws InterruptedException {
            synchronized (this) {
                if (gone) throw new InterruptedException("the client went away");
                waiter = Thread.currentThread();
            }
            try {
                return wait.run();
            } finally {
                synchronized (this) {
                    waiter = null;
                    if (gone) Thread.interrupted();
                }
            }
        }

        private void markGone() {
            synchronized (this) {
                gone = true;
                if (waiter != null) waiter.interrupt();
            }
            watched.remove(this);
        }

        @Override public void close() { watched.remove(this); }
    }

    /** A blocking wait that answers the seconds it waited. */
    @FunctionalInterface
    interface Waiting { double run() throws InterruptedException; }

    /** Watches through the kernel's tables when they can be read, else a watch that never fires. */
    static ConnectionWatch start(long periodMillis) {
        return new ConnectionWatch(periodMillis, TABLES.stream().filter(Files::isReadable).toList());
    }

    ConnectionWatch(long periodMillis, List<Path> tables) {
        if (periodMillis < 1) throw new IllegalArgumentException("the connection watch period must be ≥ 1 ms, got " + periodMillis);
        this.periodMillis = periodMillis;
        this.tables = tables;
        this.thread = tables.isEmpty() ? null : Thread.ofPlatform().name("kimivl-connection-watch").daemon().start(this::loop);
    }

    /** True when disconnects can be noticed without a write (the tables are readable). */
    boolean active() { return thread != null; }

    long passes() { return passes; }

    long lastPauseMillis() { return lastPauseMillis; }

    /**
     * Starts watching the connection between {@code local} (the server's end) and {@code remote} (the client's);
     * a null address (not a socket) gives a watch that never fires.
     */
    Watch watch(InetSocketAddress local, InetSocketAddress remote) {
        Watch w = new Watch(local == null || remote == null ? null : key(local.getAddress(), local.getPort(), remote.getAddress(), remote.getPort()));
        if (thread != null && w.key != null && !closed) {
            watched.add(w);
            synchronized (lock) {
                lock.notifyAll();
            }
        }
        return w;
    }

    @Override public void close() {
        closed = true;
        synchronized (lock) {
            lock.notifyAll();
        }
    }

    private void loop() {
        while (!closed) {
            try {
                synchronized (lock) {
                    while (watched.isEmpty() && !closed) lock.wait();
                }
                if (closed) return;
                boolean timed = cpu.isCurrentThreadCpuTimeSupported();
                long t0 = timed ? cpu.getCurrentThreadCpuTime() : System.nanoTime();
                look();
                long cost = (timed ? cpu.getCurrentThreadCpuTime() : System.nanoTime()) - t0;
                long pause = Math.min(MAX_PERIOD_MILLIS, Math.max(periodMillis, (long) (cost / CPU_SHARE / 1e6)));
                lastPauseMillis = pause;
                Thread.sleep(pause);
            } catch (InterruptedException e) {
                return;
            }
        }
    }

    /** One pass: reads the tables and marks every watched connection that is no longer established. */
    private void look() {
        // the tables to read: those where a watched connection was found, and all of them while one is not found yet
        boolean[] read = new boolean[tables.size()];
        for (Watch w : watched) {
            if (w.table < 0) java.util.Arrays.fill(read, true);
            else read[w.table] = true;
        }
        List<Map<String, Integer>> states = new ArrayList<>();
        for (int t = 0; t < tables.size(); t++) {
            Map<String, Integer> m = new HashMap<>();
            states.add(m);
            if (!read[t]) continue;
            try {
                parse(Files.readAllLines(tables.get(t)), m);
            } catch (IOException | RuntimeException e) {
                // a table that cannot be read this time: the watches stay as they are
                return;
            }
        }
        passes++;
        for (Watch w : watched) {
            Integer state = null;
            if (w.table >= 0) {
                state = states.get(w.table).get(w.key);
            } else {
                for (int t = 0; t < tables.size() && state == null; t++) {
                    state = states.get(t).get(w.key);
                    if (state != null) w.table = t;
                }
            }
            w.looks++;
            if (state != null && state == ESTABLISHED) {
                w.seen = true;
            } else if (state != null || w.seen) {
                w.markGone();                   // closed by the client (CLOSE_WAIT …), or reset and gone from the table
            } else if (w.looks >= 3) {
                watched.remove(w);              // never found: an address form this parser does not know; never fire
            }
        }
    }

    /**
     * Adds each connection of one table ({@code sl local_address rem_address st …}, addresses as hex in the
     * kernel's byte order, ports as hex) to {@code states} under {@link #key}.
     */
    static void parse(List<String> lines, Map<String, Integer> states) throws UnknownHostException {
        for (int i = 1; i < lines.size(); i++) {
            String[] f = lines.get(i).strip().split("\\s+");
            if (f.length < 4) continue;
            int lc = f[1].indexOf(':'), rc = f[2].indexOf(':');
            if (lc < 0 || rc < 0) continue;
            InetAddress la = address(f[1].substring(0, lc)), ra = address(f[2].substring(0, rc));
            int lp = Integer.parseInt(f[1].substring(lc + 1), 16), rp = Integer.parseInt(f[2].substring(rc + 1), 16);
            states.put(key(la, lp, ra, rp), Integer.parseInt(f[3], 16));
        }
    }

    /**
     * An address as /proc writes it: 8 or 32 hex digits, each 32-bit word printed as a number in the host's byte
     * order. An IPv4-mapped IPv6 address comes back as the IPv4 address, as Java reports a dual-stack socket's peer.
     */
    static InetAddress address(String hex) throws UnknownHostException {
        if (hex.length() != 8 && hex.length() != 32) throw new UnknownHostException("not a /proc/net/tcp address: " + hex);
        ByteBuffer b = ByteBuffer.allocate(hex.length() / 2).order(ByteOrder.nativeOrder());
        for (int w = 0; w < hex.length(); w += 8) b.putInt((int) Long.parseLong(hex.substring(w, w + 8), 16));
        return InetAddress.getByAddress(b.array());
    }

    /** The raw address bytes, not a host string (which may carry an IPv6 scope that /proc does not show). */
    static String key(InetAddress local, int localPort, InetAddress remote, int remotePort) {
        java.util.HexFormat h = java.util.HexFormat.of();
        return h.formatHex(local.getAddress()) + ":" + localPort + ">" + h.formatHex(remote.getAddress()) + ":" + remotePort;
    }
}
