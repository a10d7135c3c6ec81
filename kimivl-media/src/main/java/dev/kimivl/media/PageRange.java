package dev.kimivl.media;

import java.util.ArrayList;
import java.util.List;

/** A page selection as users write it: "3", "2-5", "1,4,7-9" (1-based, inclusive, in the order given). */
public final class PageRange {
    private PageRange() {}

    /**
     * The 1-based page numbers {@code spec} names in a document of {@code pages} pages; null or blank: all of them.
     *
     * @throws IllegalArgumentException naming the part that is malformed or past the end
     */
    public static int[] parse(String spec, int pages) {
        if (spec == null || spec.isBlank()) {
            int[] all = new int[pages];
            for (int i = 0; i < pages; i++) all[i] = i + 1;
            return all;
        }
        List<Integer> out = new ArrayList<>();
        for (String part : spec.split(",")) {
            String p = part.strip();
            int dash = p.indexOf('-');
            int a, b;
            try {
                if (dash < 0) a = b = Integer.parseInt(p);
                else {
                    a = Integer.parseInt(p.substring(0, dash).strip());
                    String end = p.substring(dash + 1).strip();
                    b = end.isEmpty() ? pages : Integer.parseInt(end);     // "3-": to the last page
                }
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("page range '" + spec + "': '" + p + "' is not a page number or a range such as 2-5");
            }
            if (a < 1 || b < a) throw new IllegalArgumentException("page range '" + spec + "': '" + p + "' is empty or starts before page 1");
            if (b > pages) throw new IllegalArgumentException("page range '" + spec + "': the document has " + pages + " page" + (pages == 1 ? "" : "s"));
            for (int i = a; i <= b; i++) out.add(i);
        }
        return out.stream().mapToInt(Integer::intValue).toArray();
    }
}
