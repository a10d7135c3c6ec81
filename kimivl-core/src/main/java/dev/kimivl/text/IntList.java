package dev.kimivl.text;

import java.util.Arrays;

/** A growable int array, so that encoding 100K tokens does not box every id. */
final class IntList {
    private int[] a = new int[64];
    private int n;

    void add(int v) {
        if (n == a.length) a = Arrays.copyOf(a, n * 2);
        a[n++] = v;
    }

    int size() { return n; }

    int get(int i) { return a[i]; }

    int[] toArray() { return Arrays.copyOf(a, n); }
}
