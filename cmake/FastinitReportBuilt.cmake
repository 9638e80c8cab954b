# Run by `cmake --install` (the last step of a pip build): one line saying how long the build
# took since the configure step began, or that nothing needed recompiling.
# Expects FASTINIT_CORE_FILE, FASTINIT_CONFIGURE_START (seconds since the epoch, UTC) and
# FASTINIT_KEPT_DIR (the build directory, relative to the source tree).
include("${CMAKE_CURRENT_LIST_DIR}/FastinitSay.cmake")
string(TIMESTAMP _now "%s" UTC)
math(EXPR _elapsed "${_now} - ${FASTINIT_CONFIGURE_START}")
file(TIMESTAMP "${FASTINIT_CORE_FILE}" _built "%s" UTC)
if(_built AND _built LESS FASTINIT_CONFIGURE_START)
  fastinit_say("fastinit: compiled core up to date, nothing recompiled (${_elapsed} s)")
else()
  set(_kept "")
  if(FASTINIT_KEPT_DIR)
    set(_kept " (kept in ${FASTINIT_KEPT_DIR} for the next install)")
  endif()
  fastinit_say("fastinit: compiled core built in ${_elapsed} s${_kept}")
endif()
