# A source that must fail to compile, with an error naming what is wrong:
#   cmake -DCXX=... -DFLAGS="..." -DSOURCE=... -DEXPECT=... -P check.cmake
# (ctest: the compile_fail_* tests of tests/CMakeLists.txt).
separate_arguments(flags UNIX_COMMAND "${FLAGS}")
execute_process(COMMAND ${CXX} ${flags} -fsyntax-only ${SOURCE}
                RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(result EQUAL 0)
  message(FATAL_ERROR "${SOURCE} compiled, but must not")
endif()
string(FIND "${err}" "${EXPECT}" at)
if(at EQUAL -1)
  message(FATAL_ERROR "${SOURCE} failed to compile, but the errors do not name '${EXPECT}':\n${err}")
endif()
message(STATUS "compile_fail: ${SOURCE} is refused with '${EXPECT}'")
