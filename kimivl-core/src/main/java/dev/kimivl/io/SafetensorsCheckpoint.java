package dev.kimivl.io;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.stream.Stream;

/**
 * A Hugging Face checkpoint directory: sharded through {@code model.safetensors.index.json}, or one
 * {@code model.safetensors}. All shards are mapped in one shared arena that {@link #close()} releases.
 */
public final class SafetensorsCheckpoint implements WeightSource {
    public static final String INDEX = "model.safetensors.index.json";
    public static final String SINGLE = "model.safetensors";

    private final Path dir;
    private final Arena arena;
    private final Map<String, TensorData> tensors;
    private final List<SafeTensorsFile> files;

    private SafetensorsCheckpoint(Path dir, Arena arena, Map<String, TensorData> tensors, List<SafeTensorsFile> files) {
        this.dir = dir;
        this.arena = arena;
        this.tensors = tensors;
        this.files = files;
    }

    public static SafetensorsCheckpoint open(Path dir) {
        if (!Files.isDirectory(dir)) throw new CheckpointException(dir + ": not a directory");
        Arena arena = Arena.ofShared();
        try {
            Path index = dir.resolve(INDEX);
            Map<String, TensorData> all = new LinkedHashMap<>();
            List<SafeTensorsFile> files = new ArrayList<>();
            if (Files.isRegularFile(index)) {
                Map<String, String> weightMap = readIndex(index);
                Map<String, SafeTensorsFile> shards = new TreeMap<>();
                for (String shard : new java.util.TreeSet<>(weightMap.values())) {
                    Path p = dir.resolve(shard);
                    if (!Files.isRegularFile(p)) throw new CheckpointException(index + ": shard '" + shard + "' listed in weight_map is missing");
                    shards.put(shard, SafeTensorsFile.open(p, arena));
                }
                files.addAll(shards.values());
                for (Map.Entry<String, String> e : weightMap.entrySet()) {
                    SafeTensorsFile f = shards.get(e.getValue());
                    TensorData t = f.tensors().get(e.getKey());
                    if (t == null) throw new CheckpointException(index + ": tensor '" + e.getKey() + "' is mapped to " + e.getValue() + ", which does not contain it");
                    all.put(e.getKey(), t);
                }
                for (SafeTensorsFile f : shards.values()) {
                    for (String name : f.tensors().keySet()) {
                        if (!weightMap.containsKey(name)) {
                            throw new CheckpointException(f.path() + ": tensor '" + name + "' is not listed in " + INDEX + "'s weight_map");
                        }
                    }
                }
            } else if (Files.isRegularFile(dir.resolve(SINGLE))) {
                SafeTensorsFile f = SafeTensorsFile.open(dir.resolve(SINGLE), arena);
                files.add(f);
                all.putAll(f.tensors());
            } else {
                String found;
                try (Stream<Path> s = Files.list(dir)) {
                    found = s.map(p -> p.getFileName().toString()).filter(n -> n.endsWith(".safetensors")).sorted().toList().toString();
                } catch (IOException e) {
                    found = "?";
                }
                throw new CheckpointException(dir + ": no " + INDEX + " or " + SINGLE + " (safetensors files present: " + found + ")");
            }
            return new SafetensorsCheckpoint(dir, arena, Collections.unmodifiableMap(all), List.copyOf(files));
        } catch (RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    private static Map<String, String> readIndex(Path index) {
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(index.toFile());
        } catch (IOException e) {
            throw new CheckpointException(index + ": does not parse as JSON: " + JsonErrors.describe(e), e);
        }
        JsonNode wm = root == null ? null : root.get("weight_map");
        if (wm == null || !wm.isObject()) throw new CheckpointException(index + ": missing object 'weight_map'");
        Map<String, String> out = new LinkedHashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = wm.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            String shard = e.getValue().asText();
            if (shard.contains("/") || shard.contains("\\") || shard.equals("..")) {
                throw new CheckpointException(index + ": tensor '" + e.getKey() + "' maps to '" + shard + "', which is not a file name in this directory");
            }
            out.put(e.getKey(), shard);
        }
        return out;
    }

    public Path dir() { return dir; }

    @Override public Set<String> names() { return tensors.keySet(); }

    @Override public boolean has(String name) { return tensors.containsKey(name); }

    @Override
    public TensorData tensor(String name) {
        TensorData t = tensors.get(name);
        if (t == null) throw new CheckpointException(dir + ": missing tensor '" + name + "'");
        return t;
    }

    @Override public String description() { return dir.toString(); }

    @Override
    public void checkUnchanged() {
        for (SafeTensorsFile f : files) f.checkUnchanged();
    }

    @Override public void close() { arena.close(); }
}
