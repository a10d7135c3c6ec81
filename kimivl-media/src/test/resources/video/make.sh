#!/usr/bin/env bash
# Remakes clip.mp4 and the reference frames the video tests compare jcodec's decoding with (needs ffmpeg; the tests
# do not: these files are committed). testsrc2 (moving shapes, a frame counter) with the hue turned 40° a frame, so
# neighbouring frames differ clearly and a frame off by one fails the comparison.
set -euo pipefail
cd "$(dirname "$0")"
ffmpeg -y -loglevel error -f lavfi -i testsrc2=size=100x60:rate=10:duration=4,hue=h=40*n \
  -c:v libx264 -pix_fmt yuv420p -g 10 -crf 20 -movflags +faststart clip.mp4   # B-frames on (x264's default)
for n in 0 4 5 6 10 15 20 25 30 35 39; do   # 4 and 6: the neighbours of a sampled frame
  ffmpeg -y -loglevel error -i clip.mp4 -vf "select=eq(n\,$n)" -fps_mode passthrough -frames:v 1 "frame$n.png"
done
# the same picture at a variable frame rate: every frame n with n % 3 == 1 dropped, the others keep their times
ffmpeg -y -loglevel error -f lavfi -i testsrc2=size=100x60:rate=10:duration=4,hue=h=40*n \
  -vf "select='not(eq(mod(n\,3)\,1))'" -fps_mode vfr -c:v libx264 -pix_fmt yuv420p -g 10 -crf 20 vfr.mp4
