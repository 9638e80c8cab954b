# fastinit_say([FIRST] <text>...): one line for the person installing fastinit (the text
# arguments are joined).
#
# The line goes to the CMake log (message STATUS: shown by `pip install -v`, `cmake`, CI logs)
# and, when CMake's output is captured by someone else (pip hides a build backend's output
# unless -v is given) and a terminal is there, also straight to that terminal (/dev/tty), so
# that `pip install .` says what it compiles and how long it took. Without a terminal (CI,
# cron) or on Windows only the log line is written. FASTINIT_BUILD_QUIET=1 keeps the terminal
# out of it.
#
# pip draws a spinner after "Building wheel for fastinit (pyproject.toml) ... ". The FIRST line
# erases the spinner's character and starts a new line; the next ones return to the start of
# the line (where the spinner has drawn again) and write over it. So the terminal shows
#     Building wheel for fastinit (pyproject.toml) ...
#   fastinit: compiling ...
#   fastinit: compiled core built in 14 s
#   done
#
# Included by CMakeLists.txt and by the install-time script (cmake_install.cmake), so it must
# not depend on anything of the configure step.

function(fastinit_say)
  set(args ${ARGV})
  set(format "\\r  %s\\n")
  if(ARGV0 STREQUAL "FIRST")
    list(POP_FRONT args)
    set(format "\\b \\b\\n  %s\\n")
  endif()
  string(JOIN "" text ${args})
  message(STATUS "${text}")
  if(UNIX AND NOT "$ENV{FASTINIT_BUILD_QUIET}" MATCHES "^(1|ON|on|true|TRUE|yes|YES)$")
    # `test -t 1` is on CMake's own stdout (execute_process shares it when no OUTPUT_* is
    # given): a terminal there has already shown the STATUS line. A failed open of /dev/tty
    # (no controlling terminal) is silent.
    execute_process(
      COMMAND sh -c "test -t 1 || { printf \"$1\" \"$2\" > /dev/tty; } 2>/dev/null; exit 0"
              fastinit_say "${format}" "${text}"
      RESULT_VARIABLE _fastinit_say_ignored)
  endif()
endfunction()
