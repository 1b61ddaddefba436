# onnx-ml.proto (a superset of onnx.proto) and onnx-data.proto (sequence and
# optional values in test data) are taken from the installed onnx Python
# package, never copied into the repository, and compiled with the system protoc.
find_package(Python3 REQUIRED COMPONENTS Interpreter)
if(NOT KILN_ONNX_PROTO_DIR)
  execute_process(
    COMMAND ${Python3_EXECUTABLE} -c "import onnx, os; print(os.path.dirname(onnx.__file__))"
    OUTPUT_VARIABLE KILN_ONNX_PROTO_DIR OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _rc)
  if(NOT _rc EQUAL 0 OR NOT EXISTS "${KILN_ONNX_PROTO_DIR}/onnx-ml.proto")
    message(FATAL_ERROR "onnx-ml.proto not found: install the onnx Python package (pip install onnx) "
                        "or pass -DKILN_ONNX_PROTO_DIR=/path/to/onnx/package")
  endif()
endif()
set(KILN_ONNX_PROTO_DIR "${KILN_ONNX_PROTO_DIR}" CACHE PATH "folder holding onnx-ml.proto and onnx-data.proto")
message(STATUS "kiln: ONNX protos from ${KILN_ONNX_PROTO_DIR}")

set(_gen ${PROJECT_BINARY_DIR}/gen)
file(MAKE_DIRECTORY ${_gen}/onnx)
set(_onnx_pb_srcs)
foreach(_p onnx-ml onnx-data)
  configure_file(${KILN_ONNX_PROTO_DIR}/${_p}.proto ${_gen}/onnx/${_p}.proto COPYONLY)
  add_custom_command(
    OUTPUT ${_gen}/onnx/${_p}.pb.cc ${_gen}/onnx/${_p}.pb.h
    COMMAND protobuf::protoc --cpp_out=${_gen} -I${_gen} ${_gen}/onnx/${_p}.proto
    DEPENDS ${_gen}/onnx/${_p}.proto protobuf::protoc
    COMMENT "protoc ${_p}.proto")
  list(APPEND _onnx_pb_srcs ${_gen}/onnx/${_p}.pb.cc)
endforeach()
add_library(kiln_onnx_proto STATIC ${_onnx_pb_srcs})
target_include_directories(kiln_onnx_proto SYSTEM PUBLIC ${_gen})
target_link_libraries(kiln_onnx_proto PUBLIC protobuf::libprotobuf)
set_target_properties(kiln_onnx_proto PROPERTIES POSITION_INDEPENDENT_CODE ON)

# kiln's own protobuf schemas (engine metadata, timing cache).
file(GLOB KILN_PROTOS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/engine/*.proto)
set(_kgen ${PROJECT_BINARY_DIR}/gen/kiln_proto)
file(MAKE_DIRECTORY ${_kgen})
set(_kiln_pb_srcs)
foreach(p ${KILN_PROTOS})
  get_filename_component(_n ${p} NAME_WE)
  add_custom_command(
    OUTPUT ${_kgen}/${_n}.pb.cc ${_kgen}/${_n}.pb.h
    COMMAND protobuf::protoc --cpp_out=${_kgen} -I${PROJECT_SOURCE_DIR}/src/engine ${p}
    DEPENDS ${p} protobuf::protoc)
  list(APPEND _kiln_pb_srcs ${_kgen}/${_n}.pb.cc)
endforeach()
if(_kiln_pb_srcs)
  add_library(kiln_engine_proto STATIC ${_kiln_pb_srcs})
else()
  add_library(kiln_engine_proto INTERFACE)
endif()
target_include_directories(kiln_engine_proto SYSTEM INTERFACE ${_kgen})
if(_kiln_pb_srcs)
  target_include_directories(kiln_engine_proto SYSTEM PUBLIC ${_kgen})
  target_link_libraries(kiln_engine_proto PUBLIC protobuf::libprotobuf)
  set_target_properties(kiln_engine_proto PROPERTIES POSITION_INDEPENDENT_CODE ON)
endif()
