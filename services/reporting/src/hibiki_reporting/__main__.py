from hibiki_reporting.entrypoints.main import main

main()
