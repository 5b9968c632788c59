from hibiki_sms_gateway.entrypoints.main import main

main()
