-- One database per service, created on the first start of the dev PostgreSQL.
CREATE DATABASE guidance_tts;
CREATE DATABASE routing;
CREATE DATABASE sms_gateway;
CREATE DATABASE reporting;
CREATE DATABASE media_gateway;
