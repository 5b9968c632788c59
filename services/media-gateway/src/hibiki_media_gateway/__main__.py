from hibiki_media_gateway.entrypoints.main import main

main()
