package dev.kimivl.model;

/** Writes image features into the token embeddings at the placeholder positions, in order (spec §6.1). */
public final class ImageMerge {
    private ImageMerge() {}

    /**
     * @param embeddings [T, D] token embeddings, updated in place
     * @param features   [M, D] projector outputs of all images in prompt order
     */
    public static void merge(float[] embeddings, int[] ids, int placeholderId, float[] features, int hidden) {
        int placeholders = 0;
        for (int id : ids) if (id == placeholderId) placeholders++;
        int m = features.length / hidden;
        if (placeholders != m) {
            throw new IllegalArgumentException("the prompt has " + placeholders + " image placeholder tokens (id " + placeholderId
                    + ") but the images produce " + m + " feature rows; each image needs exactly its own run of placeholders");
        }
        int next = 0;
        for (int t = 0; t < ids.length; t++) {
            if (ids[t] == placeholderId) {
                System.arraycopy(features, next * hidden, embeddings, t * hidden, hidden);
                next++;
            }
        }
    }
}
