# Sourced by ./kimivl and ./run-tests: finds a JDK >= 25 and exports JAVA_HOME.
# Order: $JAVA_HOME if it is new enough, then the newest /usr/lib/jvm/*, then /opt/*jdk*.
kimivl_java_major() {
  # prints the feature version of the JDK at $1 (e.g. 25), or nothing
  local v
  v=$("$1/bin/java" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = //p' | head -n1)
  printf '%s' "${v%%.*}"
}

kimivl_find_jdk() {
  local cand major best="" best_major=0
  if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/javac" ]; then
    major=$(kimivl_java_major "$JAVA_HOME")
    if [ -n "$major" ] && [ "$major" -ge 25 ]; then printf '%s' "$JAVA_HOME"; return 0; fi
  fi
  for cand in /usr/lib/jvm/* /opt/*jdk* /opt/java/*; do
    [ -x "$cand/bin/javac" ] || continue
    major=$(kimivl_java_major "$cand")
    [ -n "$major" ] || continue
    if [ "$major" -ge 25 ] && [ "$major" -gt "$best_major" ]; then best="$cand"; best_major="$major"; fi
  done
  if [ -n "$best" ]; then printf '%s' "$best"; return 0; fi
  return 1
}

if ! KIMIVL_JDK=$(kimivl_find_jdk); then
  echo "kimivl: no JDK 25 or newer found (looked at \$JAVA_HOME=${JAVA_HOME:-<unset>} and /usr/lib/jvm/*)." >&2
  echo "kimivl: install one (e.g. 'apt-get install temurin-25-jdk' or openjdk-25-jdk) or point JAVA_HOME at it." >&2
  exit 3
fi
export JAVA_HOME="$KIMIVL_JDK"
export PATH="$JAVA_HOME/bin:$PATH"
export MAVEN_OPTS="${MAVEN_OPTS:-} --sun-misc-unsafe-memory-access=allow"
