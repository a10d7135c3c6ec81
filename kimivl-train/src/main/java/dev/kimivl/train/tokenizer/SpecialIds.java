package dev.kimivl.train.tokenizer;

/**
 * Where {@link TokenizerFiles#write} put the special tokens, so that a model's {@code config.json} can be written to
 * match ({@code vocab_size}, {@code bos_token_id}, {@code eos_token_id}, {@code pad_token_id},
 * {@code media_placeholder_token_id}).
 *
 * @param numRanks         ordinary BPE ranks, ids 0..numRanks-1; the first special id
 * @param vocabSize        rows the model's embedding and output head need ({@code vocab_size}); {@code [PAD]} is the
 *                         last of them, {@code [UNK]} the one before
 * @param tokenizerSize    ids the tokenizer knows; ids from {@code vocabSize} on are reserved names only, like Kimi's
 *                         two trailing slots (163840 and 163841) past its 163,840-row embedding
 * @param bos              {@code [BOS]} (the template never inserts it; Kimi adds no BOS)
 * @param eos              {@code [EOS]}
 * @param pad              {@code [PAD]}
 * @param unk              {@code [UNK]}
 * @param imEnd            {@code <|im_end|>}, the stop token of a chat turn
 * @param mediaPlaceholder {@code <|media_pad|>}, the image placeholder expanded to one id per merged patch group
 */
public record SpecialIds(int numRanks, int vocabSize, int tokenizerSize, int bos, int eos, int pad, int unk, int imEnd,
                         int mediaPlaceholder) {
}
