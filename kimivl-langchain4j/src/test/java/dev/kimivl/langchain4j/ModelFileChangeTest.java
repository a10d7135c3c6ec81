package dev.kimivl.langchain4j;

import dev.kimivl.model.KimiVL;
import dev.langchain4j.data.message.UserMessage;
import dev.langchain4j.model.chat.ChatModel;
import dev.langchain4j.model.chat.request.ChatRequest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Issue 12 item 4 in a long-lived application: a checkpoint truncated under an open model makes the next chat call
 * fail with an error naming the file, not crash the JVM in a kernel that reads a lost page.
 */
class ModelFileChangeTest {

    @Test
    void aCheckpointTruncatedUnderTheModelIsNamedOnTheNextCall(@TempDir Path tmp) throws Exception {
        Path dir = Files.createDirectories(tmp.resolve("tiny-random"));
        try (var s = Files.list(Path.of("../models/tiny-random"))) {
            for (Path f : s.toList()) if (Files.isRegularFile(f)) Files.copy(f, dir.resolve(f.getFileName()));
        }
        Path st = dir.resolve("model.safetensors");
        try (KimiVL model = KimiVL.open(dir)) {
            ChatModel chat = KimiVLChatModel.builder(model).temperature(0).maxTokens(3).build();
            ChatRequest hello = ChatRequest.builder().messages(UserMessage.from("Hello")).build();
            assertNotNull(chat.chat(hello).aiMessage());
            try (FileChannel ch = FileChannel.open(st, StandardOpenOption.WRITE)) {
                ch.truncate(4096);
            }
            Exception e = assertThrows(Exception.class, () -> chat.chat(hello));
            assertTrue(e.getMessage().startsWith(st + ": truncated to 4096 bytes since it was loaded"), e.toString());
        }
    }
}
